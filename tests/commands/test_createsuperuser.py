"""The documented way to create an admin user without prompts (createsuperuser --noinput)."""

from tests.commands.process import manage


def test_superuser_is_created_without_prompts(scratch_database_url):
    _, url = scratch_database_url
    assert manage("ensure_database", DATABASE_URL=url).returncode == 0
    assert manage("migrate", "--noinput", DATABASE_URL=url).returncode == 0
    result = manage(
        "createsuperuser",
        "--noinput",
        DATABASE_URL=url,
        DJANGO_SUPERUSER_USERNAME="ops",
        DJANGO_SUPERUSER_EMAIL="ops@example.org",
        DJANGO_SUPERUSER_PASSWORD="a-long-random-password-42",
    )
    assert result.returncode == 0, result.stderr
    check = manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "u = User.objects.get(username='ops'); "
        "print(u.is_superuser, u.check_password('a-long-random-password-42'))",
        DATABASE_URL=url,
    )
    assert check.stdout.strip().splitlines()[-1] == "True True"
