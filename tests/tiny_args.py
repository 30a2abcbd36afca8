"""Command-line arguments shared by the tests that train a tiny run."""

# 2 training steps of a 4-channel model at 32x64: enough for a real checkpoint, not for pictures.
TINY_TRAIN = [
    "--steps", "2", "--batch-size", "2", "--num-workers", "0", "--checkpoint-every", "2",
    "--sample-every", "2", "--log-every", "1", "--no-progress", "--device", "cpu",
    "--set", "data.height=32", "--set", "data.width=64", "--set", "data.num_train=6",
    "--set", "data.num_val=2", "--set", "model.num_res_blocks=4", "--set", "model.g_width=4",
    "--set", "model.d_width=4", "--set", "model.z_dim=8", "--set", "model.pyramid_width=8",
    "--set", "train.ema_bn_batches=1",
]
