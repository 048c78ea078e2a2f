#!/usr/bin/env bash
# Installs the Debian packages the project needs that are missing (as root; otherwise says what to install).
# Usage: scripts/system-deps.sh run|test
set -euo pipefail
need=()
# Debian's python3 cannot create virtual environments without python3-venv; a pyenv/python.org build can.
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
need+=(unixodbc)  # pyodbc loads libodbc at import
need+=(bubblewrap)  # every user script runs in a bubblewrap sandbox (runs/script_process.py)
if [ "${1:-run}" = "test" ]; then
  need+=(openssh-server samba unixodbc unixodbc-dev odbc-postgresql odbc-mariadb gnupg chromium)
fi
# Scripts never run as root: when the portal does, they run as this unprivileged account, created here.
sandbox_user="${ETL_SANDBOX_USER:-etl-sandbox}"
if [ "$(id -u)" = 0 ] && ! getent passwd "$sandbox_user" >/dev/null; then
  echo "Creating the unprivileged account $sandbox_user that user scripts run as"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    "$sandbox_user"
fi
missing=()
for pkg in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "Missing Debian packages: ${missing[*]} (install them with apt-get as root)" >&2
  exit 0
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
