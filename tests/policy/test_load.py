from __future__ import annotations

from pathlib import Path

import pytest

from policy import AccessRequest, Action, Policy, PolicyLoadError, Scope
from tests.policy.helpers import animate_request, principal, write

NO_POLITICAL_ADS = """
@id("forbid-political-ads")
@reason("purpose_forbidden")
@message("portraits may not be animated for political advertising")
forbid (principal, action == XP::Action::"animate", resource)
when { context.purpose == "political-ads" };
"""


def test_default_policy_ids() -> None:
    policy = Policy.load()
    assert set(policy.policy_ids) >= {
        "permit-animate",
        "forbid-missing-scope",
        "forbid-without-active-consent",
        "forbid-face-mismatch",
        "forbid-protected-person",
    }
    assert len(policy.digest) == 64


def test_operator_forbid_takes_effect(tmp_path: Path) -> None:
    policy = Policy.load([write(tmp_path, "ads.cedar", NO_POLITICAL_ADS)])
    assert "forbid-political-ads" in policy.policy_ids
    denied = policy.decide(animate_request(purpose="political-ads"))
    assert not denied.allowed
    assert denied.policy_ids == ("forbid-political-ads",)
    assert [(r.code, r.policy_id) for r in denied.reasons] == [("purpose_forbidden", "forbid-political-ads")]
    assert denied.reasons[0].message == "portraits may not be animated for political advertising"
    assert policy.decide(animate_request(purpose="marketing")).allowed


def test_directory_of_policies(tmp_path: Path) -> None:
    write(tmp_path, "ads.cedar", NO_POLITICAL_ADS)
    write(tmp_path, "notes.txt", "not a policy")
    policy = Policy.load([tmp_path])
    assert not policy.decide(animate_request(purpose="political-ads")).allowed


def test_operator_forbid_without_reason_gets_a_generic_code(tmp_path: Path) -> None:
    text = '@id("no-audit") forbid (principal, action == XP::Action::"audit_read", resource);'
    policy = Policy.load([write(tmp_path, "p.cedar", text)])
    decision = policy.decide(AccessRequest(principal(Scope.AUDIT_READ), Action.AUDIT_READ))
    assert [(r.code, r.policy_id) for r in decision.reasons] == [("forbidden", "no-audit")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('@id("x") forbid (principal, action, resource) when { context.nope == "a" };', "nope"),
        ('@id("x") forbid (principal, action, resource) when { context.face_checked == "yes" };', "Bool"),
        ('@id("x") forbid (principal, action, resource) when { principal.tenant == "t" };', "tenant"),
        ('@id("x") forbid (principal, action == XP::Action::"delete", resource);', "delete"),
    ],
    ids=["unknown-attribute", "wrong-type", "unknown-entity-attribute", "unknown-action"],
)
def test_policy_failing_validation_is_rejected(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.cedar", text)
    with pytest.raises(PolicyLoadError, match="schema validation") as caught:
        Policy.load([path])
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)
    assert caught.value.code == "policy_load_error"


def test_bad_syntax_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.cedar", '@id("x") forbid (principal, action, resource) when { ')
    with pytest.raises(PolicyLoadError, match="does not parse") as caught:
        Policy.load([path])
    assert caught.value.path == str(path)


def test_missing_id_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "anon.cedar", NO_POLITICAL_ADS + "\nforbid (principal, action, resource);")
    with pytest.raises(PolicyLoadError, match="no @id"):
        Policy.load([path])


def test_duplicate_id_across_files_is_rejected(tmp_path: Path) -> None:
    first = write(tmp_path, "a.cedar", NO_POLITICAL_ADS)
    second = write(tmp_path, "b.cedar", NO_POLITICAL_ADS)
    with pytest.raises(PolicyLoadError, match="duplicate policy id 'forbid-political-ads'") as caught:
        Policy.load([first, second])
    assert str(first) in str(caught.value) and str(second) in str(caught.value)


def test_duplicate_of_a_default_id_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "p.cedar", '@id("permit-animate") permit (principal, action, resource);')
    with pytest.raises(PolicyLoadError, match="duplicate"):
        Policy.load([path])


def test_templates_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "t.cedar", '@id("t") permit (principal == ?principal, action, resource);')
    with pytest.raises(PolicyLoadError, match="templates"):
        Policy.load([path])


def test_missing_path_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="no such"):
        Policy.load([tmp_path / "absent.cedar"])


def test_without_defaults_everything_is_denied() -> None:
    policy = Policy.load(include_default=False)
    assert policy.policy_ids == ()
    for action in Action:
        decision = policy.decide(AccessRequest(principal(*Scope), action, "s_9"))
        assert not decision.allowed
        assert decision.policy_ids == ()
        assert [(r.code, r.policy_id) for r in decision.reasons] == [("not_permitted", None)]


def test_evaluation_error_fails_closed(tmp_path: Path) -> None:
    # Validates, but overflows when evaluated; Cedar alone would skip it and allow.
    text = (
        '@id("permit-all") permit (principal, action, resource);\n'
        '@id("forbid-overflow") forbid (principal, action, resource) when { 9223372036854775807 + 1 > 0 };'
    )
    policy = Policy.load([write(tmp_path, "p.cedar", text)], include_default=False)
    decision = policy.decide(animate_request())
    assert not decision.allowed
    assert decision.policy_ids == ("forbid-overflow",)
    assert [(r.code, r.policy_id) for r in decision.reasons] == [("policy_error", "forbid-overflow")]


def test_digest_tracks_policy_text(tmp_path: Path) -> None:
    path = write(tmp_path, "ads.cedar", NO_POLITICAL_ADS)
    before = Policy.load([path]).digest
    assert Policy.load([path]).digest == before
    assert Policy.load().digest != before
    write(tmp_path, "ads.cedar", NO_POLITICAL_ADS.replace("political-ads", "political-ad"))
    assert Policy.load([path]).digest != before
