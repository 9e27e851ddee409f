#!/usr/bin/perl
# colony's process spawner: a small long-lived co-process that forks and execs shell
# tasks for the Node process that started it (process-launcher.ts). Spawning from Node
# itself stalls the event loop 1-4 ms per process (fork of a large RSS, on the loop);
# this process is small, so fork is cheap, and the Node side only writes a line.
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
# by the time stdin reaches EOF (colony closed it or died) or $ACK_WAIT passed, which
# spares a file per task in the common case. After EOF this process keeps reaping and
# recording its children, then exits when none are left.
#
# Only perl-base modules, so it runs on every Debian/Ubuntu install and on macOS.
use strict;
use warnings;
use POSIX ();
use Fcntl qw(O_WRONLY O_APPEND O_CREAT O_RDONLY O_TRUNC);
use Errno qw(EINTR EAGAIN);

# colony dying must not kill us through SIGPIPE on our stdout, and a Ctrl-C or hangup
# meant for colony must not stop us from recording the exits of running tasks.
$SIG{PIPE} = 'IGNORE';
$SIG{INT}  = 'IGNORE';
$SIG{HUP}  = 'IGNORE';
# A handler (not the default) so that SIGCHLD interrupts select() with EINTR.
my $chld = 0;
$SIG{CHLD} = sub { $chld = 1 };

my %by_pid;    # pid -> { id, exit, killed, ack }
my %unacked;   # id -> [exit path, "code signal\n", when]: exits of SPAWNACKs not yet ACKed
my $ACK_WAIT = 2;    # seconds an exit waits for colony's ACK before its file is written
my %by_id;     # id  -> pid (only while running)
my $running = 0;
my $in_buf  = '';
my $out_buf = '';
my $eof     = 0;
my $out_ok  = 1;    # false once colony stopped reading our replies

sub enc {
    my ($s) = @_;
    $s =~ s/([%\t\r\n])/sprintf('%%%02X', ord($1))/ge;
    return $s;
}

sub dec {
    my ($s) = @_;
    $s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
    return $s;
}

sub reply { $out_buf .= join("\t", map { enc($_) } @_) . "\n" }

sub flush_replies {
    while ($out_ok && length $out_buf) {
        my $n = syswrite(STDOUT, $out_buf);
        if (!defined $n) {
            next if $! == EINTR;
            $out_ok = 0;    # EPIPE: colony is gone; keep recording exit files only
            last;
        }
        substr($out_buf, 0, $n, '');
    }
    $out_buf = '' unless $out_ok;
}

sub spawn_child {
    my ($ack, $id, $cwd, $out, $stdin, $exit, $shell, $script, @env) = @_;
    if (!defined $script) { reply('ERROR', $id // '', 'malformed SPAWN request'); return }
    if (exists $by_id{$id}) { reply('ERROR', $id, "execution $id is already running"); return }
    if (exists $unacked{$id}) { reply('EXISTS', $id); return }
    # An exit file means an earlier colony process already ran this execution.
    if (-s $exit) { reply('EXISTS', $id); return }
    # Open the files here, not in the child, so that a bad path is reported to colony
    # as an error instead of a silent exit 127.
    if (!-d $cwd) { reply('ERROR', $id, "working directory $cwd does not exist"); return }
    if (!-x $shell) { reply('ERROR', $id, "shell $shell is not an executable file"); return }
    # The unit directory is made here, off colony's event loop (one level: its parent
    # exists); an existing one is fine.
    (my $unit_dir = $out) =~ s{/[^/]*\z}{};
    mkdir $unit_dir, 0700 if $unit_dir ne '' && !-d $unit_dir;
    my $out_fd = POSIX::open($out, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (!defined $out_fd) { reply('ERROR', $id, "cannot open output file $out: $!"); return }
    my $in_fd = POSIX::open($stdin ne '' ? $stdin : '/dev/null', O_RDONLY);
    if (!defined $in_fd) {
        my $err = $!;
        POSIX::close($out_fd);
        reply('ERROR', $id, "cannot open stdin file $stdin: $err");
        return;
    }
    my $pid = fork();
    if (!defined $pid) {
        my $err = $!;
        POSIX::close($out_fd);
        POSIX::close($in_fd);
        reply('ERROR', $id, "fork failed: $err");
        return;
    }
    if ($pid == 0) {
        # Child: its own process group, so that KILL reaches everything it starts.
        POSIX::setpgid(0, 0);
        $SIG{$_} = 'DEFAULT' for qw(PIPE INT HUP CHLD);
        POSIX::dup2($in_fd, 0);
        POSIX::dup2($out_fd, 1);
        POSIX::dup2($out_fd, 2);
        POSIX::close($in_fd) if $in_fd > 2;
        POSIX::close($out_fd) if $out_fd > 2;
        if (!chdir $cwd) {
            my $m = "colony: cannot change to directory $cwd: $!\n";
            POSIX::write(2, $m, length $m);
            POSIX::_exit(127);
        }
        %ENV = ();
        for my $kv (@env) {
            my $i = index($kv, '=');
            $ENV{ substr($kv, 0, $i) } = substr($kv, $i + 1) if $i > 0;
        }
        { no warnings 'exec'; exec { $shell } $shell, '-c', $script; }
        my $m = "colony: cannot run $shell: $!\n";
        POSIX::write(2, $m, length $m);
        POSIX::_exit(127);
    }
    # Parent: also set the group here, so a KILL that arrives before the child ran
    # setpgid still reaches it (fails harmlessly once the child has exec'd).
    POSIX::setpgid($pid, $pid);
    POSIX::close($out_fd);
    POSIX::close($in_fd);
    $by_pid{$pid} = { id => $id, exit => $exit, killed => 0, ack => $ack };
    $by_id{$id} = $pid;
    $running++;
    reply('STARTED', $id, $pid, start_time($pid));
}

# Field 22 of /proc/<pid>/stat (Linux): with the pid, it identifies the process for
# re-attach after a restart (a reused pid has another start time). Empty elsewhere.
sub start_time {
    my ($pid) = @_;
    open(my $fh, '<', "/proc/$pid/stat") or return '';
    my $line = <$fh>;
    close $fh;
    return '' unless defined $line && $line =~ /\)\s+(.*)$/s;
    my @f = split ' ', $1;
    return $f[19] // '';
}

sub kill_child {
    my ($id, $sig) = @_;
    my $pid = defined $id ? $by_id{$id} : undef;
    return unless defined $pid && defined $sig && $sig =~ /^\d+$/;
    $by_pid{$pid}{killed} = 1;
    kill($sig, -$pid);
}

sub write_exit_file {
    my ($path, $text) = @_;
    my $tmp = "$path.tmp.$$";
    my $fd = POSIX::open($tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    return 0 unless defined $fd;
    my $ok = defined POSIX::write($fd, $text, length $text);
    POSIX::close($fd);
    $ok &&= rename($tmp, $path);
    unlink $tmp unless $ok;
    return $ok;
}

sub reap {
    $chld = 0;
    while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
        my $status = $?;
        my $child  = delete $by_pid{$pid} or next;
        delete $by_id{ $child->{id} };
        $running--;
        # A cancelled task's leftovers (a grandchild that ignored SIGTERM) go with it.
        # The group id cannot have been reused yet: its leader was reaped just now.
        kill('KILL', -$pid) if $child->{killed};
        my ($code, $sig) = ('-', '-');
        if (POSIX::WIFEXITED($status)) { $code = POSIX::WEXITSTATUS($status) }
        elsif (POSIX::WIFSIGNALED($status)) { $sig = POSIX::WTERMSIG($status) }
        if ($child->{ack} && !$eof && $out_ok) {
            $unacked{ $child->{id} } = [ $child->{exit}, "$code $sig\n", time ];
        }
        else {
            write_exit_file($child->{exit}, "$code $sig\n")
                or print STDERR "colony spawner: cannot write $child->{exit}: $!\n";
        }
        reply('EXIT', $child->{id}, $code, $sig);
    }
}

# Exit files for exits colony has not ACKed: all of them, or those older than $older.
sub write_unacked {
    my ($older) = @_;
    my $now = time;
    for my $id (keys %unacked) {
        my ($path, $text, $since) = @{ $unacked{$id} };
        next if defined $older && $now - $since < $older;
        delete $unacked{$id};
        write_exit_file($path, $text)
            or print STDERR "colony spawner: cannot write $path: $!\n";
    }
}

sub handle_line {
    my ($line) = @_;
    my @f = map { dec($_) } split(/\t/, $line, -1);
    my $op = shift @f // '';
    if ($op eq 'SPAWN') { spawn_child(0, @f) }
    elsif ($op eq 'SPAWNACK') { spawn_child(1, @f) }
    elsif ($op eq 'KILL') { kill_child(@f) }
    elsif ($op eq 'ACK') { delete $unacked{ $f[0] } if defined $f[0] }
    elsif ($op ne '') { reply('ERROR', $f[0] // '', "unknown request $op") }
}

while (!$eof || $running > 0) {
    my $rin = '';
    vec($rin, 0, 1) = 1 unless $eof;
    # SIGCHLD interrupts select; the timeout only covers a SIGCHLD that lands between
    # the last reap and the select call.
    my $timeout = ($running > 0 || %unacked) ? 0.2 : undef;
    my $n = select(my $rout = $rin, undef, undef, $timeout);
    if ($n > 0 && vec($rout, 0, 1)) {
        my $got = sysread(STDIN, $in_buf, 65536, length $in_buf);
        if (!defined $got) {
            $eof = 1 unless $! == EINTR || $! == EAGAIN;
        }
        elsif ($got == 0) {
            $eof = 1;
        }
        write_unacked() if $eof;    # colony is gone: nobody will ACK
        while ((my $nl = index($in_buf, "\n")) >= 0) {
            my $line = substr($in_buf, 0, $nl + 1, '');
            chop $line;
            handle_line($line);
            flush_replies();    # a reply does not wait for the rest of the chunk's spawns
        }
    }
    reap();
    flush_replies();
    write_unacked($out_ok ? $ACK_WAIT : undef) if %unacked;
}
write_unacked();
exit 0;
