"""Parameters in SQL: bound as real query parameters, never written into the query's text.

What becomes a placeholder (outside quotes and comments, which are left alone otherwise):
- `{name}` or `{name:format}` (a named value or a parameter; an unknown name is an error);
- `:name` for a known parameter;
- a quoted literal holding `{name}` placeholders (`'%{customer}%'`, `'{yesterday}'`): the whole literal,
  bound to its text with the values put in;
- a parameter keyed like a variable (`@start_date`): the value in its `DECLARE`/`SET` statement (the rest of
  the query keeps using the variable); with no such statement, every `@start_date` itself.

Styles: "qmark" (`?`: sqlite3, pyodbc), "format" (`%s`: psycopg, with every other `%` doubled), and
"display" (values written in as SQL literals, for the preview and the run's record; never executed).
"""
import datetime
import decimal
import re

from runs.parameters import PLACEHOLDER, ParameterError, lookup, unknown_message, value_text

LEXEME = re.compile(r"""(?P<literal>(?:\b[Nn])?'(?:[^']|'')*')|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/""", re.S)
STATEMENT = re.compile(r"\b(DECLARE|SET)\b", re.I)
ASSIGNMENT = re.compile(r"\s*(?P<var>@[A-Za-z_]\w*)(?:\s+(?:AS\s+)?[A-Za-z_]\w*(?:\s*\([^()]*\))?)?\s*(?P<eq>=)?\s*",
                        re.I)
CODE_TOKEN = re.compile(PLACEHOLDER.pattern + r"|(?<![:\w]):(?P<colon>[A-Za-z_]\w*)|(?<![\w@])(?P<var>@[A-Za-z_]\w*)")


class _Query:
    def __init__(self, sql, params):
        self.sql = sql
        self.params = params
        self.lexemes = [(match.start(), match.end(), bool(match.group("literal"))) for match in LEXEME.finditer(sql)]
        self.lexeme_end = {start: end for start, end, _ in self.lexemes}
        self.variables = {key.lower(): key for key in params if key.startswith("@") and len(key) > 1}
        self.edits = []  # (start, end, value), never overlapping
        self.declared = set()

    def in_lexeme(self, position):
        return any(start <= position < end for start, end, _ in self.lexemes)

    def in_edit(self, position):
        return any(start <= position < end for start, end, _ in self.edits)

    def code_regions(self):
        position = 0
        for start, end, _ in self.lexemes:
            yield position, start
            position = end
        yield position, len(self.sql)

    # -- DECLARE / SET -----------------------------------------------------------------------------

    def value_end(self, position):
        """Where an assigned value ends: a comma, semicolon or line end outside brackets and quotes."""
        depth, sql = 0, self.sql
        while position < len(sql):
            if position in self.lexeme_end:
                position = self.lexeme_end[position]
                continue
            char = sql[position]
            if char == "(":
                depth += 1
            elif char == ")":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and char in ",;\n":
                break
            position += 1
        return position

    def assignments(self):
        for statement in STATEMENT.finditer(self.sql):
            if self.in_lexeme(statement.start()):
                continue
            position = statement.end()
            while True:
                head = ASSIGNMENT.match(self.sql, position)
                if not head:
                    break
                key = self.variables.get(head.group("var").lower())
                position = head.end()
                if head.group("eq"):
                    end = self.value_end(position)
                    stop = end
                    while end > position and self.sql[end - 1].isspace():
                        end -= 1
                    if key is not None and end > position:
                        self.edits.append((position, end, unquote(self.params[key])))
                        self.declared.add(key)
                    position = stop
                elif key is not None:
                    self.declared.add(key)
                if statement.group(1).upper() != "DECLARE" or not self.sql.startswith(",", position):
                    break
                position += 1

    # -- placeholders --------------------------------------------------------------------------------

    def placeholders(self):
        for region_start, region_end in self.code_regions():
            for match in CODE_TOKEN.finditer(self.sql, region_start, region_end):
                if self.in_edit(match.start()):
                    continue
                if match.group("name"):
                    found, value = lookup(self.params, match.group("name"))
                    if not found:
                        raise ParameterError(unknown_message(match.group("name"), self.params) + " (in the query)")
                    self.edits.append((match.start(), match.end(), bind_value(value, match.group("format"))))
                elif match.group("colon"):
                    found, value = lookup(self.params, match.group("colon"))
                    if found and match.group("colon") in self.params:
                        self.edits.append((match.start(), match.end(), bind_value(value)))
                else:
                    key = self.variables.get(match.group("var").lower())
                    if key is not None and key not in self.declared:
                        self.edits.append((match.start(), match.end(), unquote(self.params[key])))

    def literals(self):
        for start, end, is_literal in self.lexemes:
            if not is_literal or self.in_edit(start):
                continue
            text = self.sql[start:end]
            body = text[text.index("'") + 1:-1].replace("''", "'")
            used = False

            def put_in(match):
                nonlocal used
                found, value = lookup(self.params, match.group("name"))
                if not found:
                    return match.group()
                used = True
                return value_text(value, match.group("format"))

            filled = PLACEHOLDER.sub(put_in, body)
            if used:
                self.edits.append((start, end, filled))

    def build(self, style):
        self.edits.sort()
        out, values, position = [], [], 0
        for start, end, value in self.edits:
            out.append(self.plain(self.sql[position:start], style))
            out.append(placeholder(value, style))
            values.append(value)
            position = end
        out.append(self.plain(self.sql[position:], style))
        return "".join(out), values

    @staticmethod
    def plain(text, style):
        return text.replace("%", "%%") if style == "format" else text


def bind_value(value, format_spec=None):
    if not format_spec and isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
        return value
    return value_text(value, format_spec)


def unquote(value):
    """A variable's value as bound: Atlas users wrote SQL quotes into the value ('2024-01-31')."""
    value = bind_value(value)
    if isinstance(value, str):
        text = value.strip()
        prefix = 1 if text[:2] in ("N'", "n'") else 0
        if len(text) >= 2 + prefix and text[prefix] == "'" and text.endswith("'"):
            return text[prefix + 1:-1].replace("''", "'")
    return value


def placeholder(value, style):
    if style == "qmark":
        return "?"
    if style == "format":
        return "%s"
    if style == "display":
        if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, (datetime.date, datetime.datetime)):
            value = value_text(value)
        return "'" + str(value).replace("'", "''") + "'"
    raise ValueError(f"Unknown placeholder style {style!r}")


def bind_query(sql, params, style="qmark"):
    """(SQL with placeholders, the values in order) — or (sql unchanged, None) when nothing is bound.

    Callers pass both to the connector: `database.execute(sql, values)`; `style` is the connector's
    (`runs.parameters.paramstyle_for(database)`). Raises ParameterError for an unknown `{name}`.
    """
    if not sql:
        return sql or "", None
    query = _Query(sql, params or {})
    query.assignments()
    query.placeholders()
    query.literals()
    if not query.edits:
        return sql, None
    return query.build(style)


def display_query(sql, params):
    """The query as it will run, with the bound values written in as SQL literals (for pages and logs)."""
    return bind_query(sql, params, style="display")[0]
