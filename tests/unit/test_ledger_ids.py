"""Every message in the ledger gets an id of its own: a random UUID, as text, in its usual form."""
import uuid

from shared.ledger.recording import new_ids


def test_a_batch_of_ids_are_distinct_version_4_uuids_in_their_usual_form() -> None:
    ids = new_ids(5_000)
    assert len(set(ids)) == 5_000
    for id_ in ids:
        parsed = uuid.UUID(id_)
        assert (str(parsed), parsed.version, parsed.variant) == (id_, 4, uuid.RFC_4122)


def test_no_ids_asked_none_given() -> None:
    assert new_ids(0) == []
