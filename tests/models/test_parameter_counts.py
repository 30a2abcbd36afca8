"""At paper width our networks have exactly the parameters of the published configuration
(counts from docs/architecture.md, obtained by building the published code)."""

import pytest

from dpgan.models import GeneratorOptions, build_discriminator, build_generator, count_parameters


@pytest.mark.parametrize(
    "kind,classes,expected",
    [("dp", 35, 69_513_219), ("oa", 35, 71_107_523), ("dp", 151, 70_615_683)],
)
def test_generator_counts(kind, classes, expected):
    assert count_parameters(build_generator(GeneratorOptions(kind), classes)) == expected


@pytest.mark.parametrize(
    "classes,heads,expected",
    [(35, "enc", 22_917_350), (35, "none", 22_251_364), (151, "enc", 22_924_890)],
)
def test_discriminator_counts(classes, heads, expected):
    assert count_parameters(build_discriminator(classes, patch_heads=heads)) == expected


def test_patch_head_counts():
    d = build_discriminator(35)
    assert [count_parameters(h) for h in d.patch_heads] == [259_265, 406_721]
