"""A Krita check that dies inside a call into Krita is run once more, then failed as Krita's.
Runs without Krita: the runs are faked."""

from __future__ import annotations

import pytest
import test_krita


def fake_runs(monkeypatch, results: list[dict]) -> list[str]:
    places = []

    def run(function, tmp, resources=None):
        places.append(tmp.name)
        return dict(results.pop(0))

    monkeypatch.setattr(test_krita, "run_in_krita", run)
    return places


def test_a_crash_inside_krita_is_tried_once_more(monkeypatch, tmp_path):
    inside = {"inside": "Document.importAnimation"}
    places = fake_runs(monkeypatch, [inside, {"frames": [1]}])
    assert test_krita.in_krita("frames", tmp_path, tries=2) == {"frames": [1]}
    assert places == ["try1", "try2"]  # each in a fresh folder (and Krita profile)


def test_two_crashes_are_reported_as_kritas(monkeypatch, tmp_path):
    inside = {"inside": "Document.importAnimation"}
    fake_runs(monkeypatch, [inside, inside])
    with pytest.raises(pytest.fail.Exception, match="Krita crashed inside Document.importAnim"):
        test_krita.in_krita("frames", tmp_path, tries=2)


def test_a_check_that_finishes_runs_once(monkeypatch, tmp_path):
    places = fake_runs(monkeypatch, [{"size": [64, 48]}])
    assert test_krita.in_krita("layers", tmp_path) == {"size": [64, 48]}
    assert places == ["try1"]
