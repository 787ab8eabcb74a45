"""The plan format: one definition in Python, a generated C header that must not drift."""

from __future__ import annotations

import pytest

from bench_firmware import plan_format as pf


def test_committed_header_matches_the_python_definition() -> None:
    assert pf.HEADER_PATH.read_text() == pf.render_c_header(), (
        "mp_plan.h is stale: run `python -m bench_firmware.plan_format`"
    )


@pytest.mark.parametrize("struct", pf.STRUCTS, ids=lambda s: s.c_name)
def test_structs_have_no_implicit_padding(struct: pf.Struct) -> None:
    struct.check_layout()
    assert struct.size % 4 == 0


def test_pack_unpack_round_trip() -> None:
    raw = pf.CONV.pack(input_offset=128, output_offset=-5, act_min=-128, act_max=127,
                       kernel_h=3, kernel_w=1, pad_top=-1, weights_off=4096)
    back = pf.CONV.unpack(raw)
    assert back["input_offset"] == 128 and back["output_offset"] == -5
    assert back["pad_top"] == -1 and back["weights_off"] == 4096 and back["kernel_w"] == 1


def test_pack_rejects_unknown_fields() -> None:
    with pytest.raises(TypeError, match="unknown fields"):
        pf.POOL.pack(nonsense=1)


def test_op_codes_are_unique_and_named_in_the_header() -> None:
    assert len(set(pf.OP_CODES.values())) == len(pf.OP_CODES)
    header = pf.render_c_header()
    for name, code in pf.OP_CODES.items():
        assert f"#define MP_OP_{name} {code}" in header
