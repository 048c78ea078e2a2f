"""The dependency graph of a project, laid out left to right on the server for an inline SVG.

Columns are the longest chain of dependencies leading to a task; tasks of other projects linked to this one are
drawn too (dashed). Edges are coloured by kind: on success, on failure, on completion.
"""
from django.urls import NoReverseMatch, reverse

NODE_WIDTH, NODE_HEIGHT = 170, 44
GAP_X, GAP_Y, MARGIN = 70, 22, 12
EDGE_COLOURS = {"success": "#198754", "failure": "#dc3545", "completion": "#0d6efd"}
EDGE_LABELS = {"success": "on success", "failure": "on failure", "completion": "on completion"}


def _url(task):
    try:
        return reverse("tasks:detail", args=[task.pk])
    except NoReverseMatch:
        return ""


def dependency_graph(project):
    from django.db.models import Q

    from tasks.models import Dependency, Task

    links = list(Dependency.objects.filter(Q(upstream__project=project) | Q(downstream__project=project))
                 .select_related("upstream__project", "downstream__project"))
    tasks = {task.pk: task for task in Task.objects.filter(project=project).select_related("project")}
    for link in links:
        tasks.setdefault(link.upstream_id, link.upstream)
        tasks.setdefault(link.downstream_id, link.downstream)
    parents = {pk: [] for pk in tasks}
    for link in links:
        parents[link.downstream_id].append(link.upstream_id)

    column = {}

    def depth(pk, seen=()):
        if pk not in column:
            # `seen` guards against a cycle saved before validation existed: it is drawn, not followed.
            column[pk] = 1 + max((depth(p, seen + (pk,)) for p in parents[pk] if p not in seen), default=-1)
        return column[pk]

    for pk in tasks:
        depth(pk)
    columns = {}
    for pk in sorted(tasks, key=lambda pk: (tasks[pk].project_id != project.pk, tasks[pk].run_rank,
                                            tasks[pk].name)):
        columns.setdefault(column[pk], []).append(pk)
    nodes = {}
    for index, members in columns.items():
        for row, pk in enumerate(members):
            task = tasks[pk]
            nodes[pk] = {
                "id": pk, "name": task.name, "url": _url(task), "enabled": task.enabled,
                "external": task.project_id != project.pk, "project": task.project.name,
                "x": MARGIN + index * (NODE_WIDTH + GAP_X), "y": MARGIN + row * (NODE_HEIGHT + GAP_Y),
                "width": NODE_WIDTH, "height": NODE_HEIGHT, "label_y": NODE_HEIGHT / 2 + 4,
            }
    edges = []
    for link in links:
        start, end = nodes[link.upstream_id], nodes[link.downstream_id]
        x1, y1 = start["x"] + NODE_WIDTH, start["y"] + NODE_HEIGHT / 2
        x2, y2 = end["x"], end["y"] + NODE_HEIGHT / 2
        bend = max(30, (x2 - x1) / 2)
        edges.append({"kind": link.on, "colour": EDGE_COLOURS[link.on], "label": EDGE_LABELS[link.on],
                      "path": f"M {x1} {y1} C {x1 + bend} {y1}, {x2 - bend} {y2}, {x2 - 2} {y2}",
                      "title": f"{start['name']} → {end['name']} ({EDGE_LABELS[link.on]})"})
    width = MARGIN * 2 + max(len(columns), 1) * (NODE_WIDTH + GAP_X) - GAP_X
    height = MARGIN * 2 + max((len(m) for m in columns.values()), default=1) * (NODE_HEIGHT + GAP_Y) - GAP_Y
    return {"nodes": list(nodes.values()), "edges": edges, "width": width, "height": height,
            "colours": [{"kind": kind, "colour": colour, "label": EDGE_LABELS[kind]}
                        for kind, colour in EDGE_COLOURS.items()],
            "has_links": bool(links)}
