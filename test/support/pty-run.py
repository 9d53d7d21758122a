"""Runs a command in a real pseudo-terminal and prints {"code", "output"} as JSON.

Usage: python pty-run.py COLUMNS ARGV_JSON. The child's stdin, stdout and stderr are the pty's
slave side (so `isTTY` is true and `columns` is COLUMNS); everything it writes, escape codes
included, is collected until it exits. Used by test/cli/terminal.test.ts.
"""
import fcntl
import json
import os
import pty
import struct
import sys
import termios

columns = int(sys.argv[1])
argv = json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
chunks = []
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:  # EIO: the child closed the terminal (it exited)
        break
    if not data:
        break
    chunks.append(data)
_, status = os.waitpid(pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "output": b"".join(chunks).decode("utf-8", "replace")}))
