# colony's process spawner, Python flavour: the same protocol as spawner.pl (read that
# file's header), started by process-launcher.ts when python3 is on PATH. It starts
# each task with os.posix_spawn, which glibc runs as a vfork-style clone: no copy of
# this process's page tables and no interpreter code in the child before exec. Measured
# on the 2-CPU development VM, `sh -c true` cost 0.8 ms of CPU per task this way against
# 1.6 ms through Perl's fork and exec (bench/README.md).
#
# Protocol: one request or reply per line; fields separated by TAB, each field
# percent-encoded (at least %, TAB, CR and LF are escaped as %XX).
#   SPAWN id cwd outPath stdinPath|"" exitPath shell script KEY=VALUE...
#     -> STARTED id pid startTime   or   ERROR id message
#        or EXISTS id (exitPath already holds an exit: this execution ran before)
#   SPAWNACK ...             the same, for a caller that will ACK the exit (below)
#   KILL id signalNumber     (to the whole process group; no reply)
#   ACK id                   colony recorded this exit durably (no reply)
#   later, for every started id:   EXIT id code signal   ("-" for the absent one)
# The exit is also written atomically to exitPath as "code signal\n", so that it
# survives colony: before EXIT is sent for a SPAWN; for a SPAWNACK only if no ACK came
# by the time stdin reaches EOF (colony closed it or died) or ACK_WAIT passed, which
# spares a file per task in the common case. After EOF this process keeps reaping and
# recording its children, then exits when none are left.
#
# Standard library only. COLONY_SPAWNER=auto uses it with Python 3.8 or later (posix_spawn
# with a process group); asked for explicitly, an older Python 3.7 falls back to fork and
# exec (start_fork).
import errno
import os
import re
import select
import signal
import sys
import time

# colony dying must not kill us through SIGPIPE, and a Ctrl-C or hangup meant for
# colony must not stop us from recording the exits of running tasks. The children get
# every one of these back at their default (setsigdef below).
RESET_IN_CHILD = (signal.SIGPIPE, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
signal.signal(signal.SIGPIPE, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
# SIGCHLD wakes select() through this pipe: Python retries an interrupted select
# (PEP 475), so a flag set by a handler would only be seen at the next timeout.
wake_r, wake_w = os.pipe()
os.set_blocking(wake_r, False)
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)  # drained every loop
signal.signal(signal.SIGCHLD, lambda signum, frame: None)

START_DIR_B = os.getcwdb()
# The stdin of tasks without one, opened once (close-on-exec; each child gets a dup2).
DEV_NULL = os.open("/dev/null", os.O_RDONLY)
ACK_WAIT = 2.0  # seconds an exit waits for colony's ACK before its file is written
unacked = {}  # id -> (exit path, "code signal\n", when): exits of SPAWNACKs not yet ACKed
good_shells = set()  # shells found executable once (a later failure is reported by the spawn)
by_pid = {}  # pid -> [id, exit path, killed]
by_id = {}  # id -> pid (only while running)
out_buf = bytearray()
out_ok = True  # false once colony stopped reading our replies

ESCAPE = re.compile(rb"[%\t\r\n]")
UNESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def enc(value):
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    return ESCAPE.sub(lambda m: b"%%%02X" % m.group(0)[0], value)


def dec(field):
    if b"%" not in field:
        return field
    return UNESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), field)


def reply(*fields):
    out_buf.extend(b"\t".join(enc(f) for f in fields) + b"\n")


def flush_replies():
    global out_ok
    while out_ok and out_buf:
        try:
            n = os.write(1, out_buf)
        except InterruptedError:
            continue
        except OSError:
            out_ok = False  # EPIPE: colony is gone; keep recording exit files only
            break
        del out_buf[:n]
    if not out_ok:
        out_buf.clear()


def absolute(path):
    return path if path.startswith(b"/") else os.path.join(START_DIR_B, path)


def text(b):
    return b.decode("utf-8", "replace")


def start_time(pid):
    """Field 22 of /proc/<pid>/stat (Linux): with the pid, it tells a reused pid apart."""
    try:
        fd = os.open(b"/proc/%d/stat" % pid, os.O_RDONLY)
    except OSError:
        return b""
    try:
        line = os.read(fd, 4096)
    except OSError:
        return b""
    finally:
        os.close(fd)
    fields = line[line.rfind(b")") + 2 :].split()
    return fields[19] if len(fields) > 19 else b""


# Field 22 is the boot-clock time the process was created at, in clock ticks (rounded
# down). Read from the boot clock just before and just after a spawn, it is known
# without reading /proc when both fall in the same tick; a read of /proc right after a
# spawn waits for the child's exec (~40 us here).
try:
    NS_PER_TICK = 10**9 // os.sysconf("SC_CLK_TCK")
    time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def tick_now():
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // NS_PER_TICK

except (AttributeError, ValueError, OSError):  # no boot clock (not Linux): read /proc

    def tick_now():
        return None


def start_posix_spawn(shell, argv, env, in_fd, out_fd):
    return os.posix_spawn(
        shell,
        argv,
        env,
        file_actions=[
            (os.POSIX_SPAWN_DUP2, in_fd, 0),
            (os.POSIX_SPAWN_DUP2, out_fd, 1),
            (os.POSIX_SPAWN_DUP2, out_fd, 2),
        ],
        setpgroup=0,  # its own process group, so that KILL reaches all it starts
        setsigdef=RESET_IN_CHILD,
        setsigmask=(),
    )


def start_fork(shell, argv, env, in_fd, out_fd):
    """For a Python without posix_spawn (before 3.8): fork and exec, as spawner.pl does."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            for signum in RESET_IN_CHILD:
                signal.signal(signum, signal.SIG_DFL)
            os.dup2(in_fd, 0)
            os.dup2(out_fd, 1)
            os.dup2(out_fd, 2)
            os.execve(shell, argv, env)
        except BaseException as e:
            os.write(2, b"colony: cannot run %s: %s\n" % (shell, str(e).encode()))
        finally:
            os._exit(127)
    try:
        os.setpgid(pid, pid)  # also here, so that a KILL before the child's own call reaches it
    except OSError:
        pass
    return pid


start = start_posix_spawn if hasattr(os, "POSIX_SPAWN_DUP2") else start_fork


def spawn_child(fields, ack=False):
    if len(fields) < 7:
        reply(b"ERROR", fields[0] if fields else b"", b"malformed SPAWN request")
        return
    ident, cwd, out, stdin, exit_path, shell, script = fields[:7]
    env = {}
    for kv in fields[7:]:
        i = kv.find(b"=")
        if i > 0:
            env[kv[:i]] = kv[i + 1 :]
    if ident in by_id:
        reply(b"ERROR", ident, b"execution %s is already running" % ident)
        return
    if ident in unacked:
        reply(b"EXISTS", ident)
        return
    exit_path = absolute(exit_path)
    out = absolute(out)
    # The unit directory is made here, off colony's event loop (one level: its parent
    # exists). An existing one is fine, but then it may hold an exit file, which means an
    # earlier colony process already ran this execution; a directory made just now cannot.
    unit_dir = os.path.dirname(out)
    try:
        os.mkdir(unit_dir, 0o700)
        fresh = os.path.dirname(exit_path) == unit_dir
    except OSError:
        fresh = False  # there already, or the open below reports why not
    if not fresh:
        try:
            if os.path.getsize(exit_path) > 0:
                reply(b"EXISTS", ident)
                return
        except OSError:
            pass
    if shell not in good_shells:
        if not (os.path.isfile(shell) and os.access(shell, os.X_OK)):
            reply(b"ERROR", ident, b"shell %s is not an executable file" % shell)
            return
        good_shells.add(shell)
    # Opened here (close-on-exec; the child gets dup2'd copies), so that a bad path is
    # reported to colony as an error instead of a silent exit 127.
    try:
        out_fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as e:
        reply(b"ERROR", ident, "cannot open output file %s: %s" % (text(out), e.strerror))
        return
    if stdin:
        try:
            in_fd = os.open(absolute(stdin), os.O_RDONLY)
        except OSError as e:
            os.close(out_fd)
            reply(b"ERROR", ident, "cannot open stdin file %s: %s" % (text(stdin), e.strerror))
            return
    else:
        in_fd = DEV_NULL
    # posix_spawn has no working directory of its own: the child inherits ours at the
    # moment of the call (this process is single-threaded; it goes back after the spawn).
    # Paths in the request are relative to where the spawner started, which is where
    # colony runs and most tasks do: then there is nothing to change.
    where = os.path.join(START_DIR_B, cwd)
    moved = where != START_DIR_B
    try:
        if moved:
            try:
                os.chdir(where)
            except OSError:
                reply(b"ERROR", ident, b"working directory %s does not exist" % cwd)
                return
        before = tick_now()
        pid = start(shell, [shell, b"-c", script], env, in_fd, out_fd)
        after = tick_now()
    except OSError as e:
        reply(b"ERROR", ident, "cannot run %s: %s" % (text(shell), e.strerror or e))
        return
    finally:
        os.close(out_fd)
        if in_fd != DEV_NULL:
            os.close(in_fd)
        if moved:
            os.chdir(START_DIR_B)  # relative paths in later requests mean what they meant
    by_pid[pid] = [ident, exit_path, False, ack]
    by_id[ident] = pid
    started = b"%d" % before if before is not None and before == after else start_time(pid)
    reply(b"STARTED", ident, b"%d" % pid, started)


def kill_child(fields):
    if len(fields) < 2 or not fields[1].isdigit():
        return
    pid = by_id.get(fields[0])
    if pid is None:
        return
    by_pid[pid][2] = True
    try:
        os.killpg(pid, int(fields[1]))
    except OSError:
        pass


def write_exit_file(path, data):
    tmp = path + b".tmp.%d" % os.getpid()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        return True
    except OSError as e:
        sys.stderr.write("colony spawner: cannot write %s: %s\n" % (text(path), e.strerror))
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def reap():
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == 0:
            return
        child = by_pid.pop(pid, None)
        if child is None:
            continue
        ident, exit_path, killed, ack = child
        by_id.pop(ident, None)
        # A cancelled task's leftovers (a grandchild that ignored SIGTERM) go with it.
        # The group id cannot have been reused yet: its leader was reaped just now.
        if killed:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        code, sig = b"-", b"-"
        if os.WIFEXITED(status):
            code = b"%d" % os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            sig = b"%d" % os.WTERMSIG(status)
        status = code + b" " + sig + b"\n"
        if ack and not eof and out_ok:
            unacked[ident] = (exit_path, status, time.monotonic())
        else:
            write_exit_file(exit_path, status)
        reply(b"EXIT", ident, code, sig)


def write_unacked(older_than=None):
    """Exit files for exits colony has not ACKed (all of them, or those waiting longer)."""
    now = time.monotonic()
    for ident, (path, status, since) in list(unacked.items()):
        if older_than is None or now - since >= older_than:
            del unacked[ident]
            write_exit_file(path, status)


def handle_line(line):
    fields = [dec(f) for f in line.split(b"\t")]
    op = fields.pop(0) if fields else b""
    if op == b"SPAWN":
        spawn_child(fields)
    elif op == b"SPAWNACK":
        spawn_child(fields, ack=True)
    elif op == b"ACK":
        if fields:
            unacked.pop(fields[0], None)
    elif op == b"KILL":
        kill_child(fields)
    elif op != b"":
        reply(b"ERROR", fields[0] if fields else b"", b"unknown request %s" % op)


eof = False


def main():
    global eof
    in_buf = b""
    while not eof or by_pid:
        watch = [wake_r] if eof else [0, wake_r]
        # SIGCHLD writes to the wake pipe; the timeout only covers a signal that
        # landed between the last reap and this call.
        ready, _, _ = select.select(watch, [], [], 0.2 if by_pid or unacked else None)
        # A child's exit (SIGCHLD) or the timeout: reap. A request alone has nothing to reap.
        signalled = wake_r in ready or not ready
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)  # what is left makes the next select return at once
            except BlockingIOError:
                pass
        if 0 in ready:
            try:
                chunk = os.read(0, 65536)
            except InterruptedError:
                chunk = None
            except OSError as e:
                chunk = None if e.errno == errno.EAGAIN else b""
            if chunk == b"":
                eof = True
                write_unacked()  # colony is gone: nobody will ACK
            elif chunk:
                in_buf += chunk
                *lines, in_buf = in_buf.split(b"\n")
                for line in lines:
                    handle_line(line)
                    flush_replies()  # a reply does not wait for the rest of the chunk's spawns
        if signalled:
            reap()
        flush_replies()
        if unacked:
            write_unacked(None if not out_ok else ACK_WAIT)
    write_unacked()


main()
