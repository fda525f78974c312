"""Runs a command and reports its own peak resident memory on the last line of stderr.

Linux keeps a process's peak RSS across exec, and a child that the test harness spawns
(vfork + exec) starts with the harness's peak: a busy test process would be charged to the
child. Forked from this small interpreter, the command's peak is its own.
"""
import os
import sys

pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\npeak_kib={usage.ru_maxrss}\n")
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
