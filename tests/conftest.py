"""Shared fixtures: the four kinds of user, an organization, and real servers started once per session."""
import gc
import os

import pytest
from django.contrib.auth.models import Group

from tests import factories
from tests.servers import postgres as pg
from tests.servers.sshd import start_sshd

PASSWORD = factories.PASSWORD

# Feature areas keep their own fixtures (and the servers they start) in tests/fixtures/.
pytest_plugins = [
    "tests.fixtures.ftp",
    "tests.fixtures.smb",
    "tests.fixtures.ssh_odbc",
    "tests.fixtures.remote_text",
    "tests.fixtures.sftp_speed",
    "tests.fixtures.pages",
    "tests.fixtures.sources",
    "tests.fixtures.delivery",
    "tests.fixtures.scheduling",
    "tests.fixtures.faults",
    "tests.fixtures.webhooks",
]


# --- the fast tier: `make test-fast` = pytest -m "not servers" ------------------------------------------------
# A test using any of these fixtures (directly or through another fixture) needs a server and is marked
# `servers`; a test that starts one itself carries the marker by hand (`pytestmark = pytest.mark.servers`).
SERVER_FIXTURES = {
    "sshd", "ftpd", "smbd", "smtp_sink", "http_fake", "make_http_fake", "pg_database", "mariadb_database",
    "qcluster", "receiver",
}
SERVER_MARKERS = {"browser"}


SERVER_WORDS = ("postgres", "mariadb", "odbc", "sftp", "ftp", "smb", "ssh")


def _needs_server(name, item, cache):
    """Whether the fixture `name`, as `item` sees it, uses a server fixture directly or through others."""
    if name in SERVER_FIXTURES:
        return True
    if name not in cache:
        cache[name] = False  # a cycle or a name being resolved counts as no server
        definitions = item.session._fixturemanager.getfixturedefs(name, item) or ()
        cache[name] = any(_needs_server(argument, item, cache)
                          for definition in definitions for argument in definition.argnames)
    return cache[name]


def pytest_collection_modifyitems(session, config, items):
    if config.getoption("nomigrations"):  # no migrated database to compare with (tests/schema_from_models.py)
        left_out = [item for item in items if item.get_closest_marker("migrated")]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if not item.get_closest_marker("migrated")]
    cache = {}
    for item in items:
        # A parameter may name the fixture a test asks for with request.getfixturevalue() (an engine, a store).
        params = getattr(getattr(item, "callspec", None), "params", {})
        named = {value for value in params.values() if isinstance(value, str) and value.isidentifier()}
        # Or name the engine or store that a fixture maps to a server ("postgresql" -> odbc_pg_connection).
        engine = any(word in getattr(getattr(item, "callspec", None), "id", "").lower() for word in SERVER_WORDS)
        if (engine or any(_needs_server(name, item, cache) for name in set(getattr(item, "fixturenames", ())) | named)
                or any(item.get_closest_marker(name) for name in SERVER_MARKERS)):
            item.add_marker(pytest.mark.servers)


def pytest_collection_finish(session):
    """Python's cycle collector walks every live object at each full collection: after collection that is
    Django, every app and every test module, which never become garbage. Frozen, they are left out of the walks,
    and collections come less often: they took about 6 % of the authorization tables' time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_use_migrations, django_db_blocker):
    """pytest-django's test database; under `--no-migrations` (`make test-fast`) its tables come from the models,
    so what migrating adds besides is added here (tests/schema_from_models.py)."""
    if not django_db_use_migrations:
        from django.conf import settings

        from tests.schema_from_models import complete_database

        # pytest-django switched the migration modules off for the whole session; tests that read them
        # (makemigrations --check) get the project's own back.
        settings.MIGRATION_MODULES = {}
        with django_db_blocker.unblock():
            complete_database()
    yield


@pytest.fixture(scope="session", autouse=True)
def session_keys_in_environment():
    """The session's keys (read from ./data, made by `make install`) exported to the environment, so a process a
    test starts with a data folder of its own (`manage.py serve`, `shell`, `qcluster`) can start: settings never
    create keys."""
    from django.conf import settings

    exported = {"DJANGO_SECRET_KEY": settings.SECRET_KEY, "ETL_FERNET_KEYS": ",".join(settings.ETL_FERNET_KEYS)}
    saved = {name: os.environ.get(name) for name in exported}
    os.environ.update(exported)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    """Every test gets its own data folder for run files and caches. SQLite files and local folders may be
    anywhere in the test's tmp_path (ETL_LOCAL_ROOTS) except that data folder, which is always refused."""
    settings.ETL_DATA_DIR = tmp_path / "data"
    settings.ETL_DATA_DIR.mkdir()
    settings.ETL_DEMO_DIR = tmp_path / "demo"
    settings.ETL_LOCAL_ROOTS = [tmp_path.resolve()]
    return settings.ETL_DATA_DIR


@pytest.fixture(scope="session", autouse=True)
def static_files_indexed_once():
    """WhiteNoise indexes every static file (the admin's too) each time a middleware chain is built, that is for
    every test client: a fifth of a page test's time. The files do not change during a session, so the first
    index is handed to the later ones; serving from the index is what a production worker does too."""
    from whitenoise.middleware import WhiteNoiseMiddleware

    index_everything = WhiteNoiseMiddleware.add_files_from_finders
    indexed = {}

    def add_files_from_finders(self):
        if not indexed:
            index_everything(self)
            indexed.update(self.files)
        else:
            self.files.update(indexed)

    WhiteNoiseMiddleware.add_files_from_finders = add_files_from_finders
    yield
    WhiteNoiseMiddleware.add_files_from_finders = index_everything


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Users are made in almost every test: Django's default PBKDF2 (a million rounds) would be most of the run's
    time. The login code is the same whatever the hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- people ----------------------------------------------------------------------------------------

@pytest.fixture
def organization(db):
    return factories.organization("Acme Analytics")


@pytest.fixture
def owner(organization):
    """The project's owner: an editor of the organization who may write code."""
    return factories.member(organization, "olivia", "editor", can_write_code=True)


@pytest.fixture
def member(organization):
    """A viewer of the organization, not in the project's editor groups: may look, not change."""
    return factories.member(organization, "max", "viewer")


@pytest.fixture
def org_admin(organization):
    """An admin of the organization: manages its connections and members."""
    return factories.member(organization, "ada", "admin", can_write_code=True)


@pytest.fixture
def outsider(db):
    return factories.user("eve")


@pytest.fixture
def staff(db):
    return factories.user("sam", is_staff=True, is_superuser=True)


@pytest.fixture
def editors_group(db):
    return Group.objects.create(name="Finance editors")


@pytest.fixture
def project(organization, owner):
    return factories.project(organization, owner, "Vendor feeds")


# --- servers, once per session -------------------------------------------------------------------

@pytest.fixture(scope="session")
def sshd():
    server = start_sshd()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_database():
    """Name of a fresh database on the local PostgreSQL server, dropped at the end of the session."""
    pg.admin_connect().close()
    name = pg.create_database()
    yield name
    pg.drop_database(name)


# --- connections ---------------------------------------------------------------------------------

@pytest.fixture
def sftp_connection(organization, sshd):
    return factories.connection(organization, "sftp", "Vendor SFTP", host=sshd.host, port=sshd.port,
                                username=sshd.username, secrets={"password": sshd.password})


@pytest.fixture
def pg_connection(organization, pg_database):
    host, port, user = pg.dsn_parts()
    return factories.connection(organization, "postgresql", "Warehouse", host=host, port=port, username=user,
                                database=pg_database)


@pytest.fixture
def make_task(project):
    def make(source, query, destinations=(), **fields):
        return factories.task(project, fields.pop("name", "Extract"), destinations, source_connection=source,
                              query=query, **fields)

    return make
