/* What one group commit's write + fdatasync costs this machine's CPU, without fwlog around it
 * (BENCHMARKS.md, "what a commit costs"). Appends (or overwrites) CHUNK bytes and calls
 * fdatasync N times, sleeping 8 ms between (fwlog's commit gap), and prints the thread's CPU
 * (user + system, getrusage) per round.
 *
 *   cc -O2 -Wall -o /tmp/fsync_cost tests/bench/fsync_cost.c
 *   /tmp/fsync_cost /var/tmp/fsync_cost.dat 16384 500 a   # a: append to a new file
 *   /tmp/fsync_cost /var/tmp/fsync_cost.dat 16384 500 o   # o: overwrite 64 MiB written first
 *   /tmp/fsync_cost /var/tmp/fsync_cost.dat 16384 500 d   # d: as o, with O_DIRECT
 *   rm /var/tmp/fsync_cost.dat
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double cpu_us(void) {
    struct rusage r;
    getrusage(RUSAGE_THREAD, &r);
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
}

int main(int argc, char **argv) {
    if (argc != 5 || strchr("aod", argv[4][0]) == NULL) {
        fprintf(stderr, "usage: %s FILE CHUNK N a|o|d\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    size_t chunk = strtoul(argv[2], NULL, 10);
    int n = atoi(argv[3]);
    char mode = argv[4][0];
    if (chunk == 0 || chunk % 4096 != 0 || n <= 0 || (size_t)n * chunk > (64u << 20)) {
        fprintf(stderr, "CHUNK: a multiple of 4096; N * CHUNK at most 64 MiB\n");
        return 2;
    }
    int flags = O_RDWR | O_CREAT | O_NOFOLLOW | (mode == 'a' ? O_TRUNC : 0) | (mode == 'd' ? O_DIRECT : 0);
    int fd = open(path, flags, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    char *buf;
    if (posix_memalign((void **)&buf, 4096, 1 << 20) != 0) {
        perror("posix_memalign");
        return 1;
    }
    if (mode != 'a') {
        memset(buf, 0, 1 << 20);
        for (int i = 0; i < 64; i++)
            if (pwrite(fd, buf, 1 << 20, (off_t)i << 20) != 1 << 20) {
                perror("prewrite");
                return 1;
            }
        if (fsync(fd) != 0) {
            perror("fsync");
            return 1;
        }
    }
    memset(buf, 'x', chunk);
    double c0 = cpu_us();
    for (int i = 0; i < n; i++) {
        if (pwrite(fd, buf, chunk, (off_t)i * chunk) != (ssize_t)chunk) {
            perror("pwrite");
            return 1;
        }
        if (fdatasync(fd) != 0) {
            perror("fdatasync");
            return 1;
        }
        struct timespec gap = {0, 8000000};
        nanosleep(&gap, NULL);
    }
    printf("mode %c, %zu bytes per round: %.1f us of CPU per write + fdatasync + sleep\n", mode,
           chunk, (cpu_us() - c0) / n);
    return 0;
}
