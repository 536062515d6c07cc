from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from policy import ConsentEvaluation, ConsentRecord, ConsentStatus, evaluate_consent
from tests.policy.helpers import NOW, SUBJECT, TENANT, consent


def evaluate(
    records: list[ConsentRecord],
    *,
    scope: str = "animate",
    purpose: str | None = None,
    now: datetime = NOW,
    grantee: str = TENANT,
) -> ConsentEvaluation:
    return evaluate_consent(
        records, subject_id=SUBJECT, grantee_tenant_id=grantee, scope=scope, purpose=purpose, now=now
    )


def test_active_consent() -> None:
    result = evaluate([consent(valid_until=NOW + timedelta(days=1))])
    assert result.status is ConsentStatus.ACTIVE
    assert result.consent_id == "c_1"
    assert result.active


def test_no_records_is_none() -> None:
    result = evaluate([])
    assert result.status is ConsentStatus.NONE
    assert result.consent_id is None
    assert SUBJECT in result.message and TENANT in result.message


def test_consent_for_another_subject_is_none() -> None:
    assert evaluate([consent(subject_id="s_other")]).status is ConsentStatus.NONE


def test_wrong_grantee_is_none() -> None:
    assert evaluate([consent()], grantee="t_other").status is ConsentStatus.NONE


@pytest.mark.parametrize("revoked_at", [NOW, NOW - timedelta(seconds=1)])
def test_revoked_at_or_before_now(revoked_at: datetime) -> None:
    result = evaluate([consent(id="c_123", revoked_at=revoked_at)])
    assert result.status is ConsentStatus.REVOKED
    assert result.consent_id == "c_123"
    assert f"consent c_123 for subject {SUBJECT} was revoked at {revoked_at.isoformat()}" in result.message


def test_revocation_scheduled_in_future_is_still_active() -> None:
    assert evaluate([consent(revoked_at=NOW + timedelta(seconds=1))]).status is ConsentStatus.ACTIVE


def test_expired_at_valid_until() -> None:
    result = evaluate([consent(valid_until=NOW)])
    assert result.status is ConsentStatus.EXPIRED
    assert "expired at" in result.message


def test_not_yet_valid() -> None:
    result = evaluate([consent(valid_from=NOW + timedelta(hours=1))])
    assert result.status is ConsentStatus.NOT_YET_VALID
    assert (NOW + timedelta(hours=1)).isoformat() in result.message


def test_valid_from_now_is_active() -> None:
    assert evaluate([consent(valid_from=NOW)]).status is ConsentStatus.ACTIVE


def test_other_scope_is_out_of_scope() -> None:
    result = evaluate([consent(scopes=frozenset({"verify"}))])
    assert result.status is ConsentStatus.OUT_OF_SCOPE
    assert result.consent_id == "c_1"
    assert "scope 'animate'" in result.message


def test_other_purpose_is_out_of_scope() -> None:
    record = consent(purposes=frozenset({"marketing"}))
    assert evaluate([record], purpose="marketing").status is ConsentStatus.ACTIVE
    result = evaluate([record], purpose="political-ads")
    assert result.status is ConsentStatus.OUT_OF_SCOPE
    assert "political-ads" in result.message


def test_purpose_restricted_consent_does_not_cover_unstated_purpose() -> None:
    assert evaluate([consent(purposes=frozenset({"marketing"}))]).status is ConsentStatus.OUT_OF_SCOPE


def test_one_active_among_many_wins() -> None:
    records = [
        consent(id="c_revoked", revoked_at=NOW - timedelta(days=1)),
        consent(id="c_expired", valid_until=NOW - timedelta(days=2)),
        consent(id="c_other", scopes=frozenset({"verify"})),
        consent(id="c_active"),
        consent(id="c_future", valid_from=NOW + timedelta(days=1)),
    ]
    result = evaluate(records)
    assert result.status is ConsentStatus.ACTIVE
    assert result.consent_id == "c_active"


def test_revoked_is_reported_over_expired_and_out_of_scope() -> None:
    records = [
        consent(id="c_expired", valid_until=NOW - timedelta(days=2)),
        consent(id="c_other", scopes=frozenset({"verify"})),
        consent(id="c_revoked", revoked_at=NOW - timedelta(days=1)),
    ]
    result = evaluate(records)
    assert (result.status, result.consent_id) == (ConsentStatus.REVOKED, "c_revoked")


def test_latest_expiry_is_reported() -> None:
    records = [
        consent(id="c_old", valid_until=NOW - timedelta(days=9)),
        consent(id="c_recent", valid_until=NOW - timedelta(days=1)),
    ]
    assert evaluate(records).consent_id == "c_recent"


def test_naive_now_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate([consent()], now=NOW.replace(tzinfo=None))


def test_naive_record_datetime_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        consent(valid_from=datetime(2025, 1, 1))


def test_record_ending_before_it_starts_rejected() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        consent(valid_from=NOW, valid_until=NOW - timedelta(seconds=1))


def test_record_without_scope_rejected() -> None:
    with pytest.raises(ValueError, match="no scope"):
        consent(scopes=frozenset())
