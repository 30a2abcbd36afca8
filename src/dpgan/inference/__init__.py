"""The inference wing: the Python API (api.DPGAN), label maps to images (synthesize,
variations), saved models (pretrained: config.json + safetensors), export to ONNX, conversion
of the published checkpoints (convert) and the browser demo (demo/). Nothing here imports the
training wing."""
