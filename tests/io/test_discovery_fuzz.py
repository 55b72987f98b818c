"""Discovery survives every file: hostile DICOM headers end as a skip with a reason.

A seeded mutator corrupts the header bytes of one slice of a small valid CT series (200
mutations in the default run, 2,000 in the ``slow`` run); targeted tests cover the defects
a reliability probe found (unknown VR, value-length errors, NumberOfFrames = 2^31 - 1, a
series without SliceThickness whose slices share one position).
"""

from __future__ import annotations

import resource
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from ct_slice_files import write_ct_slice
from pydicom.uid import generate_uid

from medsnowball.core.errors import CorruptFileError
from medsnowball.io import find_cases
from medsnowball.io.dicom_headers import clear_header_cache, read_header

N_SLICES = 4


def _series(folder: Path, **kw: object) -> list[Path]:
    folder.mkdir(parents=True)
    uid = generate_uid()
    paths = [folder / f"s{k}.dcm" for k in range(N_SLICES)]
    for k, p in enumerate(paths):
        write_ct_slice(
            p,
            k,
            series_uid=uid,
            study_uid="1.2.826.0.1.3680043.8.498.1",
            series_number=1,
            **kw,  # type: ignore[arg-type]
        )
    return paths


def _accounted(folder: Path, victim: Path) -> str:
    """Run discovery + selection; return how the victim file was accounted for."""
    clear_header_cache()
    found = find_cases(folder)
    skipped = dict(found.skipped_files)
    if str(victim) in skipped:
        assert skipped[str(victim)], "a skipped file must come with a reason"
        return "skipped"
    in_series = any(str(victim) in c.files for c in found.cases) or any(
        r.source == str(victim.parent) for r in found.rows
    )
    assert in_series, f"{victim.name} vanished: neither skipped nor part of a series"
    return "series"


def _mutate(data: bytearray, rng: np.random.Generator) -> None:
    """Corrupt 1-8 header bytes (after the preamble, before the pixel data)."""
    end = data.find(b"\xe0\x7f\x10\x00")
    end = end if end > 140 else len(data)
    for _ in range(int(rng.integers(1, 9))):
        pos = int(rng.integers(132, end))
        choice = rng.integers(3)
        if choice == 0:
            data[pos] = int(rng.integers(256))
        elif choice == 1:  # a value length of 0xFFFF / odd lengths
            data[pos : pos + 2] = struct.pack("<H", int(rng.choice([0xFFFF, 1, 3, 0x7FFF])))
        else:  # an unknown VR
            data[pos : pos + 2] = bytes(rng.choice(list(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 2))


def _fuzz(tmp_path: Path, n: int) -> dict[str, int]:
    base = _series(tmp_path / "base")
    clean = base[1].read_bytes()
    outcomes = {"skipped": 0, "series": 0}
    rng = np.random.default_rng(1234)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    # No single header may make discovery allocate gigabytes (the probe once reached 24 GB).
    resource.setrlimit(resource.RLIMIT_AS, (8 * 1024**3, hard))
    try:
        for _ in range(n):
            data = bytearray(clean)
            _mutate(data, rng)
            base[1].write_bytes(bytes(data))
            outcomes[_accounted(base[0].parent, base[1])] += 1
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return outcomes


def test_200_header_mutations_never_escape_discovery(tmp_path: Path) -> None:
    outcomes = _fuzz(tmp_path, 200)
    assert sum(outcomes.values()) == 200
    # The mutator is strong enough to break some headers (not a test that cannot fail).
    assert outcomes["skipped"] > 0


@pytest.mark.slow
def test_2000_header_mutations_never_escape_discovery(tmp_path: Path) -> None:
    outcomes = _fuzz(tmp_path, 2000)
    assert sum(outcomes.values()) == 2000


def test_unknown_vr_is_a_corrupt_file_naming_it(tmp_path: Path) -> None:
    (p,) = _series(tmp_path / "s")[:1]
    data = bytearray(p.read_bytes())
    pos = data.find(b"CS", 140)  # the VR of the first coded string after the meta group
    data[pos : pos + 2] = b"QQ"
    p.write_bytes(bytes(data))
    # pydicom raises NotImplementedError("Unknown Value Representation") when the value
    # is touched; that escaped discovery before.
    with pytest.raises(CorruptFileError, match="Unknown Value Representation") as err:
        read_header(p)
    assert p.name in str(err.value)
    assert _accounted(p.parent, p) == "skipped"


def test_absurd_number_of_frames_is_refused_before_allocation(tmp_path: Path) -> None:
    paths = _series(tmp_path / "s")
    ds = pydicom.dcmread(paths[2])
    ds.NumberOfFrames = 2147483647
    ds.save_as(paths[2])
    with pytest.raises(CorruptFileError, match="NumberOfFrames is 2147483647") as err:
        read_header(paths[2])
    assert paths[2].name in str(err.value)
    assert _accounted(paths[2].parent, paths[2]) == "skipped"


def test_series_without_thickness_on_one_position_does_not_crash_selection(
    tmp_path: Path,
) -> None:
    paths = _series(tmp_path / "s", thickness=None, z=5.0)
    found = find_cases(paths[0].parent)  # raised OverflowError in rank_key before
    assert found.rows, "the series must be listed (selected or not, with a reason)"
    assert all(r.reason for r in found.rows)
