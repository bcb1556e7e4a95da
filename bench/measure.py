# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The figures of a phase: wall clock, CPU time, peak memory, profile

The memory and CPU figures of other processes read /proc (Linux); elsewhere
they are missing, not wrong."""
import ctypes
import ctypes.util
import gc
import io
import os
import resource
import sys
import time


def release_memory():
    "Give back to the system the memory the process freed (glibc)"
    # The checks between the phases load large sets of rows: the peak of a
    # phase must not count what they left in the allocator
    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library('c')).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def reset_peak_rss():
    "Reset the peak resident set size of the process (Linux)"
    release_memory()
    try:
        with open('/proc/self/clear_refs', 'w') as fp:
            fp.write('5')
        return True
    except OSError:
        return False


def _status_kb(pid, key):
    try:
        with open('/proc/%s/status' % pid) as fp:
            for line in fp:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mb(pid='self'):
    "Return the peak resident set size of the process in MB"
    kb = _status_kb(pid, 'VmHWM')
    if kb is None and pid == 'self':
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if kb is not None else None


def descendants(pid):
    "Return the ids of the processes descending from pid (Linux)"
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as fp:
                stat = fp.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(')', 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    result, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            result.append(child)
            todo.append(child)
    return result


def processes_cpu(pids):
    "Return the CPU seconds used so far by the processes (Linux)"
    return sum(cpu_by_process(pids).values())


def cpu_by_process(pids):
    "Return the CPU seconds used so far by each process still running"
    result = {}
    for pid in pids:
        try:
            with open('/proc/%s/stat' % pid) as fp:
                fields = fp.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        result[pid] = (
            (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK'))
    return result


def machine_cpu():
    """Return the CPU seconds the machine spent busy and idle so far, over
    all its cores (Linux)"""
    try:
        with open('/proc/stat') as fp:
            ticks = [int(t) for t in fp.readline().split()[1:]]
    except OSError:
        return None
    tick = os.sysconf('SC_CLK_TCK')
    # user nice system idle iowait irq softirq steal; guests are in user
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / tick, idle / tick


class ServerCPU:
    """The CPU seconds of the database server's processes serving the
    database (PostgreSQL on this machine)

    The backends are those pg_stat_activity lists at the start and at the
    end of a phase: trytond keeps its connections in a pool, so the few
    that end meanwhile are missed, not counted twice."""

    def __init__(self, backend_pids):
        self.backend_pids = backend_pids
        self.start = {}
        self.seconds = None

    def __enter__(self):
        self.start = cpu_by_process(self.backend_pids())
        return self

    def __exit__(self, *exc_info):
        end = cpu_by_process(set(self.backend_pids()) | set(self.start))
        self.seconds = sum(
            cpu - self.start.get(pid, 0) for pid, cpu in end.items())


class Phase:
    "A measured phase"

    def __init__(
            self, name, items, seconds, rss, note='', cpu=None,
            other_cpu=None, database_cpu=None, sink_cpu=None,
            machine_cpu=None):
        self.name = name
        self.items = items
        self.seconds = seconds
        self.rss = rss
        self.note = note
        # CPU time of this process: steadier than the wall clock on a
        # shared machine, meaningful when the work runs in this process
        self.cpu = cpu
        # CPU time of the trytond-worker and trytond-cron processes
        self.other_cpu = other_cpu
        # CPU time of the database server's processes (PostgreSQL): where
        # the cost of a query growing with the tables shows
        self.database_cpu = database_cpu
        # CPU time of the SMTP sink's process (out of process runs)
        self.sink_cpu = sink_cpu
        # (busy, idle) CPU seconds of the whole machine, all cores: what
        # the other processes of a shared machine took, what was left idle
        self.machine_cpu = machine_cpu

    @property
    def rate(self):
        return self.items / self.seconds if self.seconds else None

    def to_dict(self):
        return {
            'phase': self.name,
            'items': self.items,
            'seconds': round(self.seconds, 4),
            'rate': round(self.rate, 1) if self.rate is not None else None,
            'peak_rss_mb': round(self.rss, 1) if self.rss else None,
            'cpu_seconds': round(self.cpu, 4) if self.cpu is not None
            else None,
            'workers_cpu_seconds': round(self.other_cpu, 2)
            if self.other_cpu is not None else None,
            'database_cpu_seconds': round(self.database_cpu, 2)
            if self.database_cpu is not None else None,
            'sink_cpu_seconds': round(self.sink_cpu, 2)
            if self.sink_cpu is not None else None,
            'machine_busy_cpu_seconds': round(self.machine_cpu[0], 2)
            if self.machine_cpu else None,
            'machine_idle_cpu_seconds': round(self.machine_cpu[1], 2)
            if self.machine_cpu else None,
            'note': self.note,
            }


def merge(name, phases, note=''):
    "Return one phase of the phases run one after the other"
    def total(attribute):
        values = [getattr(p, attribute) for p in phases]
        return None if None in values else sum(values)
    return Phase(name, total('items'), total('seconds'),
        max((p.rss or 0 for p in phases), default=0) or None, note=note,
        cpu=total('cpu'), other_cpu=total('other_cpu'),
        database_cpu=total('database_cpu'), sink_cpu=total('sink_cpu'))


class Stopwatch:
    "Measure the seconds and CPU seconds of a block from a reset memory peak"

    def __enter__(self):
        reset_peak_rss()
        self.start = time.perf_counter()
        self.start_cpu = time.process_time()
        return self

    def __exit__(self, *exc_info):
        self.seconds = time.perf_counter() - self.start
        self.cpu = time.process_time() - self.start_cpu

    def phase(self, name, items, **kwargs):
        "Return the phase of the measured block"
        return Phase(
            name, items, self.seconds, peak_rss_mb(), cpu=self.cpu, **kwargs)


def print_profile(profile):
    "Print the hot spots of a cProfile profile on the standard error"
    import pstats
    stream = io.StringIO()
    stats = pstats.Stats(profile, stream=stream)
    stats.sort_stats('cumulative').print_stats(40)
    stats.sort_stats('tottime').print_stats(25)
    print(stream.getvalue(), file=sys.stderr)
