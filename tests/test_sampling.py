import pytest

from dpgan.errors import DataError
from dpgan.training.sampling import StepBatchSampler


def _batches(**kw):
    return list(StepBatchSampler(10, 3, seed=1, **kw))


def test_resumed_stream_equals_uninterrupted_stream():
    straight = _batches(start_step=0, end_step=9)
    assert _batches(start_step=0, end_step=4) + _batches(start_step=4, end_step=9) == straight


def test_each_epoch_sees_distinct_images_and_epochs_differ():
    b = _batches(start_step=0, end_step=6)  # 3 steps per epoch (10 // 3)
    first, second = sum(b[:3], []), sum(b[3:], [])
    assert len(set(first)) == 9 and len(set(second)) == 9
    assert first != second


def test_ranks_split_the_global_batch():
    r0 = list(StepBatchSampler(12, 2, seed=0, start_step=0, end_step=3, rank=0, world_size=2))
    r1 = list(StepBatchSampler(12, 2, seed=0, start_step=0, end_step=3, rank=1, world_size=2))
    single = list(StepBatchSampler(12, 4, seed=0, start_step=0, end_step=3))
    assert [a + b for a, b in zip(r0, r1)] == single


def test_too_small_dataset_is_a_clear_error():
    with pytest.raises(DataError, match="fewer than one global batch"):
        StepBatchSampler(2, 3, seed=0, start_step=0, end_step=1)


def test_keyed_batches_carry_a_unique_augmentation_key_per_stream_slot():
    plain = list(StepBatchSampler(10, 3, seed=1, start_step=0, end_step=5))
    keyed = list(StepBatchSampler(10, 3, seed=1, start_step=0, end_step=5, keyed=True))
    assert [[i for i, _ in b] for b in keyed] == plain
    keys = [k for b in keyed for _, k in b]
    assert keys == list(range(15))  # step * global_batch + slot
    resumed = list(StepBatchSampler(10, 3, seed=1, start_step=3, end_step=5, keyed=True))
    assert resumed == keyed[3:]
