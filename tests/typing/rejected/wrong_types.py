# ruff: noqa  (deliberate mistakes: only mypy reads this file)
"""Mistakes `mypy --strict` must reject: tests/test_typing.py expects each `# rejected:` message
on its line (this file is checked, never run)."""

from __future__ import annotations

from datetime import datetime

import influxhtm as ih


@ih.measurement("climate")
class Climate(ih.Declared):
    time: datetime = ih.timestamp()
    site: str = ih.tag()
    temperature: float = ih.field(name="temp")


@ih.measurement("plain")
class Plain:
    time: datetime = ih.timestamp()
    value: float = ih.field()


def mistakes(client: ih.InfluxHtmClient) -> None:
    repo = client.repository(Climate)
    first: Climate = repo.query().first()  # rejected: Incompatible types in assignment (expression has type "Climate | None", variable has type "Climate")
    names: list[str] = repo.query().all()  # rejected: Incompatible types in assignment (expression has type "list[Climate]", variable has type "list[str]")
    for reading in repo.query():
        reading.temprature  # rejected: "Climate" has no attribute "temprature"
    Climate(time=datetime.now(), site="north", temp=1.0)  # rejected: Unexpected keyword argument "temp" for "Climate"
    Climate(datetime.now(), "north", 1.0)  # rejected: Too many positional arguments for "Climate"
    repo.add("north")  # rejected: Argument 1 to "add" of "Repository" has incompatible type "str"
    loaded: str = Climate.load({"site": "north"})  # rejected: Incompatible types in assignment (expression has type "Climate", variable has type "str")
    # Without the `ih.Declared` base a type checker cannot see what the decorator adds:
    Plain.load({"value": 1.0})  # rejected: "type[Plain]" has no attribute "load"
    rows: list[Climate] = repo.query().select(ih.mean("temperature")).all()  # rejected: Incompatible types in assignment (expression has type "list[Row]", variable has type "list[Climate]")
    store = client.create_sensor("m", "c").create_htm_model("x")
    store.params.keys()  # rejected: Item "None" of "dict[str, Any] | None" has no attribute "keys"
    model = ih.create_model("brainblocks")
    model.parms  # rejected: "ParamsModel" has no attribute "parms"
