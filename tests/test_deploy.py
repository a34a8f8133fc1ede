"""Production settings: `check --deploy` is clean with the documented environment
(deploy/production.env), HTTPS is enforced there, and every page carries the CSP."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / "deploy" / "production.env"


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The process environment of a production server: deploy/production.env, real secret."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CHAT_", "DATABASE_URL", "REDIS_URL"))
    }
    for line in ENV_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    # Nothing here connects to the documented PostgreSQL; a scratch SQLite file stands in.
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'deploy.sqlite3'}"
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py in a fresh process with this environment."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_deploy_is_clean_in_the_documented_production_environment(tmp_path: Path) -> None:
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "DEBUG")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_flags_the_development_defaults(tmp_path: Path) -> None:
    result = manage(production_env(tmp_path, DJANGO_SECURE="0"), "check", "--deploy")
    output = result.stdout + result.stderr
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output


def test_secure_mode_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["DJANGO_SECRET_KEY"]
    result = manage(env, "check")
    assert result.returncode != 0
    assert "DJANGO_SECURE=1 needs DJANGO_SECRET_KEY" in result.stderr


def test_production_redirects_to_https_sets_hsts_and_exempts_health(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import django
        django.setup()
        from django.test import Client
        c = Client()
        r = c.get("/accounts/login/")
        print("http-login", r.status_code, r.headers.get("Location"))
        r = c.get("/healthz")
        print("http-health", r.status_code)
        r = c.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        print("https-health", r.status_code, r.headers.get("Strict-Transport-Security"))
        from django.conf import settings
        print("cookies", settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE)
        """
    )
    env = production_env(tmp_path, DJANGO_SETTINGS_MODULE="chatsite.settings")
    env["DJANGO_ALLOWED_HOSTS"] += ",testserver"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["http-login"] == "301 https://testserver/accounts/login/"
    assert lines["http-health"].split()[0] in {"200", "503"}  # answered, not redirected
    status, hsts = lines["https-health"].split(" ", 1)
    assert status in {"200", "503"}
    assert hsts == "max-age=31536000; includeSubDomains; preload"
    assert lines["cookies"] == "True True"


def csp_directives(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: sources}."""
    parts = (part.split() for part in header.split(";") if part.strip())
    return {part[0]: part[1:] for part in parts}


@pytest.mark.django_db
def test_pages_carry_a_strict_content_security_policy(client: Any) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    policy = csp_directives(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]


@pytest.mark.django_db
def test_no_page_template_has_an_inline_script(admin_client: Any) -> None:
    """The strict policy would block inline scripts: the pages must have none."""
    for url in ("/accounts/login/", "/", "/admin/", "/api/docs/"):
        html = admin_client.get(url, follow=True).content.decode()
        for tag in html.split("<script")[1:]:
            opening = tag.split(">", 1)[0]
            data_block = 'type="application/json"' in opening  # json_script: never run
            assert "src=" in opening or data_block, f"inline <script> on {url}: <script{opening}>"


def test_settings_pick_the_csp_implementation_of_the_django_line() -> None:
    import django

    if django.VERSION >= (6, 0):
        assert "django.middleware.csp.ContentSecurityPolicyMiddleware" in settings.MIDDLEWARE
    else:
        assert "csp.middleware.CSPMiddleware" in settings.MIDDLEWARE
