import numpy as np
import pytest
import trimesh

from facecover import FacecoverError
from facecover.cli import main
from facecover.ingest import ingest_scan


@pytest.mark.parametrize("subject", ["subject01", "subject02"])
def test_registration_accuracy_against_truth(space, make_scan, subject):
    path, truth, _ = make_scan(subject=subject, seed=7)
    reg = ingest_scan(path, space)
    err = np.linalg.norm(reg.vertices - truth, axis=1)  # vertex to vertex: sliding counts
    assert err.mean() <= 1.0, err.mean()
    assert np.percentile(err, 95) <= 2.5
    assert reg.report["residuals"]["mean_surface_distance_mm"] < 0.3
    assert reg.vertices.shape == space["vertices"].shape


def test_metre_scan_is_an_error_unless_units_allow_it(space, make_scan):
    path, truth, _ = make_scan(scale=1e-3)
    with pytest.raises(FacecoverError, match=rf"{path.name}.*metres"):
        ingest_scan(path, space, units="mm")
    reg = ingest_scan(path, space, units="auto")
    assert reg.report["units_detected"] == "m"
    assert np.linalg.norm(reg.vertices - truth, axis=1).mean() < 1.0


def test_sphere_is_not_a_face(space, tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=80.0)
    path = tmp_path / "ball.ply"
    sphere.export(path)
    with pytest.raises(FacecoverError, match=r"ball\.ply.*(not look like a face|no face)"):
        ingest_scan(path, space)


def test_bad_files_give_clear_errors_and_no_output(space_file, tmp_path, capsys):
    empty = tmp_path / "empty.ply"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.ply"
    corrupt.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\n garbage")
    missing = tmp_path / "subject99.ply"
    for path, message in [(empty, "empty"), (corrupt, "cannot read|no triangles"), (missing, "not found")]:
        out = tmp_path / "out" / "reg.ply"
        code = main(["ingest", "--space", str(space_file), "--scan", str(path), "--out", str(out),
                     "--report", str(tmp_path / "out" / "reg.json")])
        err = capsys.readouterr().err
        assert code == 1
        assert path.name in err and any(m in err for m in message.split("|")), err
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_writes_mesh_and_report(space_file, make_scan, tmp_path):
    import json

    path, truth, _ = make_scan(subject="subject03")
    out = tmp_path / "registered" / "subject03.ply"
    report = tmp_path / "registered" / "subject03.json"
    assert main(["ingest", "--space", str(space_file), "--scan", str(path), "--out", str(out),
                 "--report", str(report)]) == 0
    mesh = trimesh.load(out, process=False)
    assert len(mesh.vertices) == 7160
    data = json.loads(report.read_text())
    assert data["residuals"]["mean_surface_distance_mm"] < 0.3
    assert sorted(p.name for p in out.parent.iterdir()) == ["subject03.json", "subject03.ply"]  # no temp files


def test_registration_from_any_orientation(space, make_scan):
    from facecover.cohort import ScanSettings

    for subject in ("subject20", "subject11"):
        path, truth, _ = make_scan(subject=subject, seed=7, settings=ScanSettings(max_rotation_deg=180))
        reg = ingest_scan(path, space)
        assert np.linalg.norm(reg.vertices - truth, axis=1).mean() <= 1.0


def test_cli_settings_are_checked(space_file, make_scan, tmp_path, capsys):
    path, _, _ = make_scan(subject="subject04")
    out = tmp_path / "registered" / "subject04.ply"
    for settings, message in [('{"fit_iteration": 3}', "unknown setting(s) fit_iteration"),
                              ('{"fit_iterations": ', "not valid JSON")]:
        code = main(["ingest", "--space", str(space_file), "--scan", str(path), "--settings", settings,
                     "--out", str(out), "--report", str(tmp_path / "registered" / "subject04.json")])
        assert code == 1 and message in capsys.readouterr().err
        assert not out.exists()
