"""Smart-keypoint memory (ls_backend/smart.py): clicks merge per task and are forgotten after
a while without a click."""

import json
import os
import time

import pytest

from ls_backend.settings import ConfigError, Settings
from ls_backend.pipeline.smart import SmartRegions


def test_clicks_of_a_task_merge_the_newest_per_name(tmp_path):
    SmartRegions(keypoints={"a": (10.0, 20.0), "b": (30.0, 40.0)}).remember(tmp_path, 7)
    later = SmartRegions(keypoints={"b": (31.0, 41.0), "c": (50.0, 60.0)})
    later.remember(tmp_path, 7)
    assert later.keypoints == {"a": (10.0, 20.0), "b": (31.0, 41.0), "c": (50.0, 60.0)}
    other = SmartRegions(keypoints={"z": (1.0, 2.0)})
    other.remember(tmp_path, 8)  # another task's clicks stay apart
    assert other.keypoints == {"z": (1.0, 2.0)}
    assert json.loads((tmp_path / "7.json").read_text())["c"] == [50.0, 60.0]


def test_idle_tasks_are_forgotten_and_their_files_removed(tmp_path):
    SmartRegions(keypoints={"a": (10.0, 20.0)}).remember(tmp_path, 1)
    SmartRegions(keypoints={"a": (11.0, 21.0)}).remember(tmp_path, 2)
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / "1.json", (two_hours_ago, two_hours_ago))
    fresh = SmartRegions(keypoints={"b": (30.0, 40.0)})
    fresh.remember(tmp_path, 1, max_age_s=3600)
    assert fresh.keypoints == {"b": (30.0, 40.0)}  # the old session's click is gone
    kept = SmartRegions(keypoints={"b": (32.0, 42.0)})
    kept.remember(tmp_path, 2, max_age_s=3600)
    assert kept.keypoints == {"a": (11.0, 21.0), "b": (32.0, 42.0)}
    os.utime(tmp_path / "2.json", (two_hours_ago, two_hours_ago))
    SmartRegions(keypoints={"c": (1.0, 1.0)}).remember(tmp_path, 3, max_age_s=3600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.json", "3.json"]  # task 2's file removed


def test_memory_setting_from_the_environment():
    assert Settings.from_env({}).smart_memory_seconds == 3600
    assert Settings.from_env({"FINEPOSE_SMART_MEMORY_S": "600"}).smart_memory_seconds == 600
    with pytest.raises(ConfigError, match="FINEPOSE_SMART_MEMORY_S"):
        Settings.from_env({"FINEPOSE_SMART_MEMORY_S": "soon"})
