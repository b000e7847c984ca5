"""`make eval-forms`'s verdict: the int8 form must stay within the stated tolerance of f32."""

from pipeline import forms


def result(f1_difference: float, max_change: float) -> dict:
    return {"f1_difference": f1_difference, "max_probability_change": max_change}


def test_within_the_tolerance_passes():
    assert forms.check({"test": result(0.005, 0.1), "external": result(-0.0049, 0.0)}) == []


def test_a_micro_f1_change_past_the_tolerance_fails_either_way():
    problems = forms.check({"up": result(0.0051, 0.01), "down": result(-0.006, 0.01)})
    assert [p.split(":")[0] for p in problems] == ["up", "down"]


def test_a_probability_moved_too_far_fails():
    problems = forms.check({"real test": result(0.0, 0.1001)})
    assert problems and "probability" in problems[0]


def test_the_stated_tolerance_is_the_readmes():
    assert forms.TOLERANCE == {"f1": 0.005, "probability": 0.1}
