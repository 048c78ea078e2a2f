"""Name clouds: each name sized by how many tasks it has, a click filters the table."""
import math

from django.db.models import Count


def name_cloud(tasks, key, label, limit=60):
    """[{key, label, count, size 1..5}] for the `limit` names with most tasks, sorted by label."""
    rows = list(tasks.order_by().values(key, label).annotate(count=Count("id")).order_by("-count")[:limit])
    if not rows:
        return []
    top = rows[0]["count"]
    cloud = [{"key": row[key], "label": row[label], "count": row["count"],
              "size": 1 + round(4 * math.log(row["count"] + 1) / math.log(top + 1))} for row in rows]
    return sorted(cloud, key=lambda item: str(item["label"]).lower())
