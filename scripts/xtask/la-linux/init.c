/*
 * /init of the LoongArch Linux guest (built and packed by `cargo xtask`, scripts/xtask/src/la_linux.rs).
 *
 * Debian has no LoongArch userland in trixie main (no busybox, no libc package for the target
 * beyond the cross toolchain's), so this is a static, libc-free program that talks to the kernel
 * through raw system calls. It prints facts a boot test checks, every line starting with
 * `linux-init: ` so the test finds them among the kernel's own: kernel release, online CPUs,
 * MemTotal, /proc/interrupts and whether every CPU's timer ticked, uptime, and the time of a fixed
 * workload (32 MiB written to /fill, which is kept so the hypervisor's dirty-page harvest sees it).
 * Kernel command-line words it obeys:
 *   septum.reboot-test + septum.run=0   reboot at once (the partition's first boot)
 *   septum.poweroff                     power off after the checks
 * Without septum.poweroff it echoes console lines until `poweroff` or `reboot`.
 *
 * Build: loongarch64-linux-gnu-gcc -static -nostdlib -ffreestanding -fno-pic -no-pie -O2
 *        -mno-lsx -mno-lasx (the kernel has no LSX support: vector code would get SIGILL)
 */

/* Generic (asm-generic/unistd.h) system call numbers, which LoongArch uses. */
enum {
	SYS_mkdirat = 34,
	SYS_mount = 40,
	SYS_openat = 56,
	SYS_close = 57,
	SYS_read = 63,
	SYS_write = 64,
	SYS_exit = 93,
	SYS_nanosleep = 101,
	SYS_clock_gettime = 113,
	SYS_reboot = 142,
	SYS_statx = 291,
};

#define AT_FDCWD (-100)
#define O_RDONLY 0
#define O_WRONLY_CREAT_TRUNC 0x241
#define CLOCK_MONOTONIC 1
#define STATX_BLOCKS 0x400
/* reboot(2)'s magic numbers and commands. */
#define REBOOT_MAGIC1 0xfee1deadL
#define REBOOT_MAGIC2 672274793L
#define REBOOT_RESTART 0x01234567L
#define REBOOT_POWER_OFF 0x4321fedcL

#define MIB (1024L * 1024L)
#define WORKLOAD_MIB 32

struct timespec {
	long sec;
	long nsec;
};

/*
 * One system call: number in a7, arguments in a0..a4 (none used here needs a sixth), result or
 * -errno in a0. The kernel may change t0-t8, so they are clobbered.
 */
static long sys(long n, long a, long b, long c, long d, long e)
{
	register long a7 __asm__("$a7") = n;
	register long a0 __asm__("$a0") = a;
	register long a1 __asm__("$a1") = b;
	register long a2 __asm__("$a2") = c;
	register long a3 __asm__("$a3") = d;
	register long a4 __asm__("$a4") = e;
	__asm__ volatile("syscall 0"
			 : "+r"(a0)
			 : "r"(a7), "r"(a1), "r"(a2), "r"(a3), "r"(a4)
			 : "$t0", "$t1", "$t2", "$t3", "$t4", "$t5", "$t6", "$t7", "$t8", "memory");
	return a0;
}

/* The compiler may turn loops into calls to these even when freestanding. */
void *memset(void *d, int c, unsigned long n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

static unsigned long len(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

static int starts_with(const char *s, const char *prefix)
{
	while (*prefix)
		if (*s++ != *prefix++)
			return 0;
	return 1;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ---- Output: each line is assembled here and written with one write(2), so it is not split. */

static char line[4096];
static unsigned long line_len;

static void put_n(const char *s, unsigned long n)
{
	while (n-- && line_len < sizeof(line) - 1)
		line[line_len++] = *s++;
}

static void put(const char *s)
{
	put_n(s, len(s));
}

static void put_u(unsigned long v)
{
	char digits[24];
	int i = 0;
	do {
		digits[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i)
		put_n(&digits[--i], 1);
}

/* `ns` nanoseconds as seconds with `places` decimals (truncated). */
static void put_seconds(unsigned long ns, int places)
{
	unsigned long scale = 1000000000UL;
	put_u(ns / scale);
	put(".");
	for (int i = 0; i < places; i++) {
		scale /= 10;
		put_u(ns / scale % 10);
	}
}

/* Starts a line with the prefix the boot tests look for. */
static void begin(const char *s)
{
	line_len = 0;
	put("linux-init: ");
	put(s);
}

static void end(void)
{
	line[line_len++] = '\n';
	const char *p = line;
	while (line_len) {
		long n = sys(SYS_write, 1, (long)p, (long)line_len, 0, 0);
		if (n <= 0)
			break;
		p += n;
		line_len -= (unsigned long)n;
	}
	line_len = 0;
}

static void say(const char *s)
{
	begin(s);
	end();
}

static void failed(const char *what, long err)
{
	begin(what);
	put(" failed: errno ");
	put_u((unsigned long)-err);
	end();
}

/* ---- Files. */

/* Reads all of `path` (at most `size` - 1 bytes) into `buf` as a string; length or -errno. */
static long read_file(const char *path, char *buf, unsigned long size)
{
	long fd = sys(SYS_openat, AT_FDCWD, (long)path, O_RDONLY, 0, 0);
	if (fd < 0)
		return fd;
	unsigned long got = 0;
	for (;;) {
		long n = sys(SYS_read, fd, (long)(buf + got), (long)(size - 1 - got), 0, 0);
		if (n <= 0)
			break;
		got += (unsigned long)n;
		if (got == size - 1)
			break;
	}
	sys(SYS_close, fd, 0, 0, 0, 0);
	buf[got] = 0;
	return (long)got;
}

/* read_file that reports a failure and leaves an empty string. */
static void slurp(const char *path, char *buf, unsigned long size)
{
	long n = read_file(path, buf, size);
	if (n < 0) {
		buf[0] = 0;
		begin("cannot read ");
		put(path);
		put(": errno ");
		put_u((unsigned long)-n);
		end();
	}
}

/* Cuts `s` at its first newline. */
static char *first_line(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '\n') {
			*p = 0;
			break;
		}
	return s;
}

/* The next line of a buffer walked by `*cursor` (modified in place), or 0 at the end. */
static char *next_line(char **cursor)
{
	char *s = *cursor;
	if (!*s)
		return 0;
	char *p = s;
	while (*p && *p != '\n')
		p++;
	if (*p)
		*p++ = 0;
	*cursor = p;
	return s;
}

/* Whether the whitespace-separated words of `text` include `word` exactly. */
static int has_word(const char *text, const char *word)
{
	unsigned long n = len(word);
	const char *p = text;
	while (*p) {
		while (is_space(*p))
			p++;
		const char *w = p;
		while (*p && !is_space(*p))
			p++;
		if ((unsigned long)(p - w) == n && starts_with(w, word))
			return 1;
	}
	return 0;
}

/* Puts `s` with leading blanks dropped and each run of blanks shown as one space. */
static void put_collapsed(const char *s)
{
	int gap = 0;
	while (is_space(*s))
		s++;
	for (; *s; s++) {
		if (is_space(*s)) {
			gap = 1;
			continue;
		}
		if (gap)
			put(" ");
		gap = 0;
		put_n(s, 1);
	}
}

/* ---- The checks. */

static char buf[16384];
static char cmdline[4096];

static void power(long command, const char *why)
{
	say(why);
	long err = sys(SYS_reboot, REBOOT_MAGIC1, REBOOT_MAGIC2, command, 0, 0);
	failed("reboot", err);
	/* init exiting panics the kernel, which with panic=-1 restarts it: still an end. */
	sys(SYS_exit, 1, 0, 0, 0, 0);
}

static void cpus(void)
{
	static char online[256];
	slurp("/sys/devices/system/cpu/online", online, sizeof(online));
	slurp("/proc/cpuinfo", buf, sizeof(buf));
	unsigned long count = 0;
	char *cursor = buf, *l;
	while ((l = next_line(&cursor)))
		if (starts_with(l, "processor"))
			count++;
	begin("online CPUs ");
	put(first_line(online));
	put(" count ");
	put_u(count);
	end();
}

static void memtotal(void)
{
	slurp("/proc/meminfo", buf, sizeof(buf));
	char *cursor = buf, *l;
	while ((l = next_line(&cursor)))
		if (starts_with(l, "MemTotal:")) {
			say(l);
			return;
		}
	say("no MemTotal in /proc/meminfo");
}

/* Whether the `n`th word of `s` (from 0) starts with a digit other than 0 (counts have no
 * leading zeros, so that means non-zero). */
static int word_nonzero(const char *s, int n)
{
	for (int i = 0; *s; i++) {
		while (is_space(*s))
			s++;
		if (i == n)
			return *s >= '1' && *s <= '9';
		while (*s && !is_space(*s))
			s++;
	}
	return 0;
}

/* The `n`th word of `s` (from 0) as a decimal number (0 if it is not one). */
static unsigned long word_u(const char *s, int n)
{
	for (int i = 0; *s; i++) {
		while (is_space(*s))
			s++;
		if (i == n) {
			unsigned long v = 0;
			while (*s >= '0' && *s <= '9')
				v = v * 10 + (unsigned long)(*s++ - '0');
			return v;
		}
		while (*s && !is_space(*s))
			s++;
	}
	return 0;
}

/* Every /proc/interrupts line, then whether the timer line's per-CPU counts are all non-zero,
 * and how many console (ttyS0) interrupts all CPUs took: the boot test wants both.
 * The header names one column per CPU (`CPU0 CPU1 ...`); a row is `label: count per CPU, then
 * the controller, hwirq and name` (LoongArch's timer row ends in `timer`). */
static void interrupts(void)
{
	slurp("/proc/interrupts", buf, sizeof(buf));
	int columns = 0, ticked = 0, seen = 0;
	unsigned long console = 0;
	char *cursor = buf, *l;
	for (int row = 0; (l = next_line(&cursor)); row++) {
		begin("irq ");
		put_collapsed(l);
		end();
		if (row == 0) {
			for (const char *p = l; *p; p++)
				if (starts_with(p, "CPU"))
					columns++;
			continue;
		}
		/* A substring match: the name column may say `timer` or `constant timer`. */
		int is_timer = 0, is_console = 0;
		for (const char *p = l; *p; p++) {
			if (starts_with(p, "timer"))
				is_timer = 1;
			if (starts_with(p, "ttyS0"))
				is_console = 1;
		}
		if (is_console)
			for (int c = 1; c <= columns; c++)
				console += word_u(l, c);
		if (!is_timer || seen)
			continue;
		seen = 1;
		ticked = columns > 0;
		/* Word 0 is the label (`11:`), words 1..columns are the counts. */
		for (int c = 1; c <= columns; c++)
			if (!word_nonzero(l, c))
				ticked = 0;
	}
	say(ticked ? "local timer ticked on every CPU yes" : "local timer ticked on every CPU NO");
	begin("console interrupts ");
	put_u(console);
	end();
}

static void uptime(void)
{
	slurp("/proc/uptime", buf, sizeof(buf));
	char *p = buf;
	while (*p && !is_space(*p))
		p++;
	*p = 0;
	begin("uptime ");
	put(buf);
	put(" s");
	end();
}

static long now_ns(void)
{
	struct timespec t;
	sys(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&t, 0, 0, 0);
	return t.sec * 1000000000L + t.nsec;
}

/* The fixed workload: 32 MiB written to /fill in 1 MiB writes, timed, and kept. The pattern is
 * non-zero so no layer can treat the pages as zero pages. */
static unsigned char chunk[MIB];

static void workload(void)
{
	for (long i = 0; i < MIB; i++)
		chunk[i] = (unsigned char)(i * 31 + 7) | 1;
	long start = now_ns();
	long fd = sys(SYS_openat, AT_FDCWD, (long)"/fill", O_WRONLY_CREAT_TRUNC, 0644, 0);
	if (fd < 0) {
		failed("open /fill", fd);
		return;
	}
	for (int i = 0; i < WORKLOAD_MIB; i++) {
		long done = 0;
		while (done < MIB) {
			long n = sys(SYS_write, fd, (long)(chunk + done), MIB - done, 0, 0);
			if (n <= 0) {
				failed("write /fill", n);
				sys(SYS_close, fd, 0, 0, 0, 0);
				return;
			}
			done += n;
		}
	}
	sys(SYS_close, fd, 0, 0, 0, 0);
	long took = now_ns() - start;
	/* What the file holds in memory, as `du -k` would say: statx's 512-byte blocks. */
	static unsigned long stx[32]; /* struct statx is 256 bytes; stx_blocks is at byte 48 */
	long err = sys(SYS_statx, AT_FDCWD, (long)"/fill", 0, STATX_BLOCKS, (long)stx);
	begin("workload wrote 32 MiB in ");
	put_seconds((unsigned long)took, 3);
	put(" s, kept ");
	if (err < 0)
		put("? (statx failed)");
	else
		put_u(stx[6] / 2);
	put(" KiB");
	end();
}

static int same(const char *a, const char *b)
{
	return len(a) == len(b) && starts_with(a, b);
}

/* Echoes console lines until one says `poweroff` or `reboot`. */
static void echo_loop(void)
{
	static char input[1024];
	unsigned long have = 0;
	say("type a line to echo it; 'poweroff' or 'reboot' to end");
	for (;;) {
		long n = sys(SYS_read, 0, (long)(input + have), (long)(sizeof(input) - 1 - have), 0,
			     0);
		if (n <= 0) {
			/* No console input (or an error): wait instead of spinning. */
			struct timespec second = { 1, 0 };
			sys(SYS_nanosleep, (long)&second, 0, 0, 0, 0);
			continue;
		}
		have += (unsigned long)n;
		/* Act on each complete line (a full buffer counts as one); keep a partial one. */
		for (;;) {
			unsigned long eol = 0;
			while (eol < have && input[eol] != '\n')
				eol++;
			if (eol == have && have < sizeof(input) - 1)
				break;
			input[eol] = 0;
			if (eol && input[eol - 1] == '\r')
				input[eol - 1] = 0;
			begin("echo ");
			put(input);
			end();
			if (same(input, "poweroff"))
				power(REBOOT_POWER_OFF, "powering off");
			if (same(input, "reboot"))
				power(REBOOT_RESTART, "rebooting");
			unsigned long used = eol < have ? eol + 1 : have;
			memcpy(input, input + used, have - used); /* forward copy: safe overlapping */
			have -= used;
		}
	}
}

static void run(void)
{
	say("reached /init");
	/* The cpio holds the mount points; the kernel mounts neither. */
	sys(SYS_mkdirat, AT_FDCWD, (long)"/proc", 0555, 0, 0);
	sys(SYS_mkdirat, AT_FDCWD, (long)"/sys", 0555, 0, 0);
	long err = sys(SYS_mount, (long)"proc", (long)"/proc", (long)"proc", 0, 0);
	if (err < 0)
		failed("mount /proc", err);
	err = sys(SYS_mount, (long)"sysfs", (long)"/sys", (long)"sysfs", 0, 0);
	if (err < 0)
		failed("mount /sys", err);
	slurp("/proc/cmdline", cmdline, sizeof(cmdline));
	if (has_word(cmdline, "septum.reboot-test") && has_word(cmdline, "septum.run=0"))
		power(REBOOT_RESTART, "first boot, rebooting");

	static char release[128];
	slurp("/proc/sys/kernel/osrelease", release, sizeof(release));
	begin("uname -r ");
	put(first_line(release));
	end();
	cpus();
	memtotal();
	interrupts();
	uptime();
	workload();
	if (has_word(cmdline, "septum.poweroff"))
		power(REBOOT_POWER_OFF, "powering off");
	echo_loop();
}

/*
 * The entry point. The kernel starts it with a valid, aligned stack (argc, argv and the
 * environment on it, none of which is used), so plain C with a normal prologue is safe here.
 */
__attribute__((noreturn, used)) void _start(void)
{
	run();
	for (;;)
		sys(SYS_exit, 0, 0, 0, 0, 0);
}
