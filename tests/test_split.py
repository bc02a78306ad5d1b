import pytest

from facecover import FacecoverError
from facecover.split import split_subjects


def test_split_by_subject_in_ratio():
    subjects = [f"subject{i:02d}" for i in range(1, 31)]
    a = split_subjects(subjects, (0.6, 0.2, 0.2), seed=3)
    assert set(a) == set(subjects)  # every subject in exactly one set (dict keys are unique)
    counts = {s: list(a.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 18, "val": 6, "test": 6}
    assert a == split_subjects(list(reversed(subjects)), (0.6, 0.2, 0.2), seed=3)
    assert a != split_subjects(subjects, (0.6, 0.2, 0.2), seed=4)


def test_split_file_lists_each_subject_once(tmp_path):
    """The split stage's table: every subject exactly once, even when a name is given twice, and the
    counts follow the ratios over the distinct subjects."""
    import pandas as pd

    from facecover.cli import main

    subjects = [f"subject{i:02d}" for i in range(1, 11)]
    assert main(["split", "--subjects", *subjects, "subject03", "--seed", "1", "--out", str(tmp_path / "s.csv")]) == 0
    table = pd.read_csv(tmp_path / "s.csv")
    assert sorted(table.subject) == subjects and table.subject.is_unique
    assert table.set.value_counts().to_dict() == {"train": 6, "val": 2, "test": 2}


def test_split_rejects_too_few_subjects():
    with pytest.raises(FacecoverError, match="at least 3"):
        split_subjects(["a", "b"])
