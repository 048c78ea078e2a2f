"""The demo data `make run` starts with: a realistic SQLite shop database and tasks that deliver locally."""
import datetime
import random
import sqlite3
from pathlib import Path

FIRST = ["Ana", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Grace", "Hiro", "Ines", "João", "Kofi", "Lena", "Mateo",
         "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara", "Zoë"]
LAST = ["Smith", "O'Brien", "García", "Müller", "Nakamura", "Okafor", "Rossi", "Kowalski", "Dubois", "Silva",
        "Johansson", "Patel", "Nguyen", "Haddad", "Novak"]
CITIES = ["Lisbon", "Chicago", "Osaka", "Lagos", "Kraków", "Montréal", "São Paulo", "Leeds", "Pune", "Austin"]
PRODUCTS = [("Widget, large", "12.50"), ('Gadget "Pro"', "99.99"), ("Cable 2m", "7.25"), ("Sensor kit", "45.00"),
            ("Adapter", "3.10"), ("Router\nrev. B", "129.00"), ("Battery pack", "24.90"), ("Café mug", "8.00")]


def build_shop_database(path, customers=1500, orders=5000, seed=7):
    """Create (or recreate) the demo shop database; deterministic for a given seed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.unlink(missing_ok=True)
    rng = random.Random(seed)
    db = sqlite3.connect(partial)
    db.executescript("""
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, city TEXT,
                                signed_up DATE NOT NULL);
        CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, unit_price TEXT NOT NULL);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                             product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL,
                             ordered_at TIMESTAMP NOT NULL, status TEXT NOT NULL, note TEXT);
    """)
    start = datetime.date(2025, 1, 1)
    db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", [
        (i, f"{rng.choice(FIRST)} {rng.choice(LAST)}",
         None if rng.random() < 0.05 else f"customer{i}@example.com", rng.choice(CITIES),
         (start + datetime.timedelta(days=rng.randrange(600))).isoformat())
        for i in range(1, customers + 1)
    ])
    db.executemany("INSERT INTO products VALUES (?, ?, ?)",
                   [(i, name, price) for i, (name, price) in enumerate(PRODUCTS, 1)])
    statuses = ["shipped"] * 6 + ["pending", "cancelled", "returned"]
    moment = datetime.datetime(2025, 6, 1, 8, 0, 0)
    db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", [
        (i, rng.randrange(1, customers + 1), rng.randrange(1, len(PRODUCTS) + 1), rng.randrange(1, 6),
         (moment + datetime.timedelta(minutes=rng.randrange(500_000))).strftime("%Y-%m-%d %H:%M:%S"),
         rng.choice(statuses), rng.choice([None, None, None, "gift wrap", "leave at door, please", 'call "first"']))
        for i in range(1, orders + 1)
    ])
    db.commit()
    db.close()
    partial.replace(path)
    return path


ORDERS_QUERY = """SELECT o.id AS order_id, o.ordered_at, c.name AS customer, c.email, c.city,
       p.name AS product, o.quantity, p.unit_price,
       printf('%.2f', o.quantity * CAST(p.unit_price AS REAL)) AS total, o.status, o.note
FROM orders o
JOIN customers c ON c.id = o.customer_id
JOIN products p ON p.id = o.product_id
ORDER BY o.id"""

CUSTOMERS_QUERY = """SELECT city, COUNT(*) AS customers, MIN(signed_up) AS first_signup, MAX(signed_up) AS last_signup
FROM customers GROUP BY city ORDER BY customers DESC"""

