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
