"""Shared fixtures: the four kinds of user, an organization, and real servers started once per session."""
import pytest
from django.contrib.auth.models import Group, User

from connections.models import Connection
from projects.models import Organization, Project
from tasks.models import Destination, Task
from tests.servers import postgres as pg
from tests.servers.sshd import start_sshd

PASSWORD = "correct horse battery"

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
]


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    """Every test gets its own data folder for run files and caches. SQLite files and local folders may be
    anywhere in the test's tmp_path (ETL_LOCAL_ROOTS) except that data folder, which is always refused."""
    settings.ETL_DATA_DIR = tmp_path / "data"
    settings.ETL_DATA_DIR.mkdir()
    settings.ETL_DEMO_DIR = tmp_path / "demo"
    settings.ETL_LOCAL_ROOTS = [tmp_path.resolve()]
    return settings.ETL_DATA_DIR


# --- people ----------------------------------------------------------------------------------------

@pytest.fixture
def organization(db):
    return Organization.objects.create(name="Acme Analytics")


@pytest.fixture
def owner(organization):
    """The project's owner: an editor of the organization who may write code."""
    user = User.objects.create_user("olivia", "olivia@example.com", PASSWORD)
    organization.members.add(user, through_defaults={"role": "editor", "can_write_code": True})
    return user


@pytest.fixture
def member(organization):
    """A viewer of the organization, not in the project's editor groups: may look, not change."""
    user = User.objects.create_user("max", "max@example.com", PASSWORD)
    organization.members.add(user, through_defaults={"role": "viewer"})
    return user


@pytest.fixture
def org_admin(organization):
    """An admin of the organization: manages its connections and members."""
    user = User.objects.create_user("ada", "ada@example.com", PASSWORD)
    organization.members.add(user, through_defaults={"role": "admin", "can_write_code": True})
    return user


@pytest.fixture
def outsider(db):
    return User.objects.create_user("eve", "eve@example.com", PASSWORD)


@pytest.fixture
def staff(db):
    return User.objects.create_user("sam", "sam@example.com", PASSWORD, is_staff=True, is_superuser=True)


@pytest.fixture
def editors_group(db):
    return Group.objects.create(name="Finance editors")


@pytest.fixture
def project(organization, owner):
    return Project.objects.create(organization=organization, name="Vendor feeds", owner=owner)


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
    return Connection.objects.create(
        organization=organization, name="Vendor SFTP", kind="sftp", host=sshd.host, port=sshd.port,
        username=sshd.username, secrets={"password": sshd.password},
    )


@pytest.fixture
def pg_connection(organization, pg_database):
    host, port, user = pg.dsn_parts()
    return Connection.objects.create(organization=organization, name="Warehouse", kind="postgresql", host=host,
                                     port=port, username=user, database=pg_database)


@pytest.fixture
def make_task(project):
    def make(source, query, destinations=(), **fields):
        task = Task.objects.create(project=project, name=fields.pop("name", "Extract"), source_connection=source,
                                   query=query, **fields)
        for position, (connection, folder) in enumerate(destinations):
            Destination.objects.create(task=task, connection=connection, folder=folder, position=position)
        return task

    return make
