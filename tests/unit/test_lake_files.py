"""``LakeFiles`` on a local lake: listing names and removing trees without Spark."""

from __future__ import annotations

from pathlib import Path

from workbench.spark.files import LakeFiles


def test_delete_tree_removes_folders_and_files_and_ignores_absent_paths(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints" / "computations" / "hot"
    (root / "1-v1" / "offsets").mkdir(parents=True)
    (root / "1-v1" / "offsets" / "0").write_text("v1")
    (root / "1-v2").mkdir()
    (root / "note").write_text("x")
    lake = LakeFiles(None)  # local paths need no Spark session
    assert sorted(lake.names(str(root))) == ["1-v1", "1-v2", "note"]

    lake.delete_tree(str(root / "1-v1"))
    lake.delete_tree(f"file:{root / 'note'}")
    lake.delete_tree(str(root / "never-there"))
    assert lake.names(str(root)) == ["1-v2"]

    lake.delete_tree(str(root))
    assert not root.exists() and lake.names(str(root)) == []
