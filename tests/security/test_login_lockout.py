"""The admin login locks a username out from one address after repeated failures (django-axes)."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.utils import timezone

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
PASSWORD = "the-right-password-for-staff-9"
HOME = "203.0.113.5"
ELSEWHERE = "198.51.100.7"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("keeper", "keeper@example.org", PASSWORD)


def log_in(client, password: str, *, username: str = "keeper", address: str = HOME):
    return client.post(
        LOGIN,
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def fail(client, times: int, **who) -> None:
    for _ in range(times):
        response = log_in(client, "wrong", **who)
        assert response.status_code == 200  # the login form again, with its error
        assert b"Please enter the correct username and password" in response.content


def lock_out(client, **who) -> None:
    fail(client, settings.AXES_FAILURE_LIMIT - 1, **who)
    assert_locked_out(log_in(client, "wrong", **who))


def assert_locked_out(response) -> None:
    assert response.status_code == 429
    assert b"Too many failed logins for this username from your address" in response.content
    minutes = settings.AXES_COOLOFF_TIME.total_seconds() / 60
    assert f"Try again in {minutes:g} minutes".encode() in response.content


def test_the_right_password_logs_in(client, staff):
    response = log_in(client, PASSWORD)
    assert response.status_code == 302
    assert response.url == "/admin/"


def test_the_last_allowed_failure_locks_the_username_out(client, staff):
    fail(client, settings.AXES_FAILURE_LIMIT - 1)
    assert_locked_out(log_in(client, "wrong"))


def test_a_locked_out_username_is_refused_even_with_the_right_password(client, staff):
    lock_out(client)
    assert_locked_out(log_in(client, PASSWORD))
    assert "_auth_user_id" not in client.session


def test_the_same_username_from_another_address_still_logs_in(client, staff):
    lock_out(client)
    assert log_in(client, PASSWORD, address=ELSEWHERE).status_code == 302


def test_another_username_from_the_same_address_still_logs_in(client, staff, django_user_model):
    django_user_model.objects.create_superuser("warden", "warden@example.org", PASSWORD)
    lock_out(client)
    assert log_in(client, PASSWORD, username="warden").status_code == 302


def test_a_success_starts_the_count_again(client, staff):
    fail(client, settings.AXES_FAILURE_LIMIT - 1)
    assert log_in(client, PASSWORD).status_code == 302
    client.logout()
    fail(client, settings.AXES_FAILURE_LIMIT - 1)
    assert log_in(client, PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, staff):
    lock_out(client)
    assert_locked_out(log_in(client, PASSWORD))
    # As if the cool-off period had passed since the failures.
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    assert log_in(client, PASSWORD).status_code == 302
