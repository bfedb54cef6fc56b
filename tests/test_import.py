"""Importing influxhtm reads no INFLUX_* variable and opens no socket."""

import subprocess
import sys
import textwrap


def test_import_reads_no_environment_and_opens_no_socket():
    code = textwrap.dedent(
        """
        import os, socket
        for key in list(os.environ):
            if key.startswith("INFLUX"):
                del os.environ[key]
        read = []
        class Spy(dict):
            def __getitem__(self, k):
                if k.startswith("INFLUX"):
                    read.append(k)
                return dict.__getitem__(self, k)
            def get(self, k, d=None):
                if k.startswith("INFLUX"):
                    read.append(k)
                return dict.get(self, k, d)
        opened = []
        real_socket = socket.socket
        class NoSocket(real_socket):
            def __init__(self, *a, **k):
                opened.append(a)
                super().__init__(*a, **k)
        socket.socket = NoSocket
        socket.create_connection = lambda *a, **k: opened.append(a)
        os.environ = Spy(os.environ)
        import influxhtm
        import influxhtm.cli, influxhtm.pytest_plugin
        print(len(read), len(opened))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0"], out.stdout + out.stderr


def test_import_loads_none_of_the_heavy_libraries():
    """pandas, numpy, matplotlib, plotly and dask are imported only by the functions that need them."""
    code = textwrap.dedent(
        """
        import sys
        import influxhtm, influxhtm.cli
        heavy = ("pandas", "numpy", "matplotlib", "plotly", "dask")
        print(" ".join(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))) or "none")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["none"], out.stdout + out.stderr


def test_every_exported_name_is_there_when_asked_for():
    """The names imported on first use resolve to the same objects as their modules hold."""
    import influxhtm
    import influxhtm.htm.plotting
    import influxhtm.running

    assert influxhtm.plot is influxhtm.htm.plotting.plot
    assert influxhtm.Runner is influxhtm.running.Runner
    assert influxhtm.nab.__name__ == "influxhtm.tools.nab"
    for name in influxhtm.__all__:
        assert getattr(influxhtm, name) is not None, name
        assert name in dir(influxhtm)
    try:
        influxhtm.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
