"""trees.plans: a query too slow on its first plan is answered by a second, with the same rows,
and leaves the connection's settings as they were."""

import pytest
from django.db import OperationalError, connection, transaction
from django.db.models.expressions import RawSQL

from tests.factories import TreeFactory
from trees import plans
from trees.models import Tree

# Sleeps only while ordered index scans are allowed (on the first plan, not the second), and
# says which plan it ran under.
SLOW_FIRST_PLAN = RawSQL(
    "(SELECT current_setting('enable_indexscan') FROM pg_sleep(CASE WHEN "
    "current_setting('enable_indexscan') = 'on' THEN %s ELSE 0 END))",
    [0.3],
)
SLOW_ON_BOTH = RawSQL("(SELECT 1 FROM pg_sleep(%s))", [0.3])


def settings_now() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('statement_timeout'), current_setting('enable_indexscan')"
        )
        return cursor.fetchone()


@pytest.fixture
def trees(db):
    return [TreeFactory().tree_id for _ in range(3)]


@pytest.fixture
def session_timeout(db):
    """The web process's own statement_timeout (trees/database.py sets one per connection)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', '4s', false)")
    yield "4s"
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', '0', false)")


def slow_ids(expression: RawSQL):
    trees = Tree.objects.annotate(slow=expression).order_by("tree_id")
    return trees.values_list("tree_id", "slow")


def test_a_query_too_slow_on_its_first_plan_gets_its_rows_from_the_second(
    trees, settings, session_timeout
):
    settings.API_PLAN_SWITCH_MS = 50
    assert plans.rows(slow_ids(SLOW_FIRST_PLAN)) == [(tree_id, "off") for tree_id in trees]
    assert settings_now() == (session_timeout, "on")


def test_a_fast_query_keeps_its_first_plan_and_the_settings(trees, settings, session_timeout):
    settings.API_PLAN_SWITCH_MS = 5000
    assert plans.rows(Tree.objects.order_by("tree_id").values_list("tree_id", flat=True)) == trees
    assert settings_now() == (session_timeout, "on")


def test_a_query_slow_on_both_plans_fails_on_the_connection_limit(
    trees, settings, session_timeout
):
    settings.API_PLAN_SWITCH_MS = 50
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', '200ms', false)")
    # (in a block of its own: the failed statement aborts that block, not the test's)
    with pytest.raises(OperationalError, match="statement timeout"), transaction.atomic():
        plans.rows(slow_ids(SLOW_ON_BOTH))
    assert settings_now() == ("200ms", "on")


def test_the_transaction_around_a_switch_goes_on(trees, settings):
    settings.API_PLAN_SWITCH_MS = 50
    assert plans.rows(slow_ids(SLOW_FIRST_PLAN))[0][1] == "off"
    assert Tree.objects.count() == 3  # not "current transaction is aborted"


def test_zero_turns_the_switch_off(trees, settings, session_timeout):
    settings.API_PLAN_SWITCH_MS = 0
    assert plans.rows(slow_ids(SLOW_FIRST_PLAN)) == [(tree_id, "on") for tree_id in trees]
