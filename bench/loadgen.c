/*
 * The benchmark's fast load generator (C, epoll): complete knock sequences, each from its
 * own loopback source 127.S.x.y, at an offered rate, bounded in count and time. It exists
 * because the Deno generator cannot offer more than ~700 TCP sequences/s on 2 cores.
 * Usage: loadgen HOST RATE SECONDS GAP_MS SUBNET tcp|udp PORT...
 *        loadgen HOST RATE SECONDS GAP_MS SUBNET tcp|udp @FILE
 * With @FILE, sequence i (from 127.SUBNET.(i>>8).(i&255)) knocks the ports on line i of
 * FILE: codes a bind_source door derived for that source, precomputed by bench/run.ts.
 * Noise: LOADGEN_NOISE=RATE and LOADGEN_NOISE_PORTS=P,P,... add single wrong TCP knocks at
 * RATE, each from its own source 127.(SUBNET+100).x.y, while the sequences run.
 * Prints {"sent":N,"offered":R,"achieved":A,"seconds":S,"sequences":[["ip",ms],...]}.
 * Loopback only: it refuses any other HOST.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_SEQ = 65000, MAX_KNOCKS = 16 };

typedef struct {
  int fd;       /* TCP socket in flight, or the UDP socket of the sequence; -1 none */
  int step;     /* next knock to send */
  int busy;     /* a TCP connect is in flight */
  double due;   /* when the next knock may go, ms */
  double sent;  /* when the connect started, ms */
  double done;  /* when the last knock completed, ms; 0 while running */
  int noise;    /* a single wrong knock, not a sequence */
  struct sockaddr_in src;
} seq_t;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 8) { fprintf(stderr, "usage: loadgen HOST RATE SECONDS GAP_MS SUBNET tcp|udp PORT...\n"); return 2; }
  const char *host = argv[1];
  if (strncmp(host, "127.", 4) != 0) { fprintf(stderr, "loadgen: loopback only\n"); return 2; }
  double rate = atof(argv[2]), seconds = atof(argv[3]), gap = atof(argv[4]);
  int subnet = atoi(argv[5]), udp = strcmp(argv[6], "udp") == 0;
  int nports = argc - 7 > MAX_KNOCKS ? MAX_KNOCKS : argc - 7;
  int ports[MAX_KNOCKS];
  for (int i = 0; i < nports; i++) ports[i] = atoi(argv[7 + i]);
  int total = (int)(rate * seconds);
  if (total > MAX_SEQ) total = MAX_SEQ;
  const char *nz = getenv("LOADGEN_NOISE"), *nzp = getenv("LOADGEN_NOISE_PORTS");
  double noise = nz ? atof(nz) : 0;
  int noise_ports[MAX_KNOCKS], nnp = 0;
  if (nzp) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", nzp);
    for (char *tok = strtok(buf, ","); tok && nnp < MAX_KNOCKS; tok = strtok(NULL, ",")) noise_ports[nnp++] = atoi(tok);
  }
  int noise_total = noise > 0 && nnp > 0 ? (int)(noise * seconds) : 0;
  if (noise_total > MAX_SEQ) noise_total = MAX_SEQ;
  int *perseq = NULL; /* per-sequence ports, nports per sequence */
  if (argv[7][0] == '@') {
    FILE *f = fopen(argv[7] + 1, "r");
    if (!f) { fprintf(stderr, "loadgen: cannot read %s\n", argv[7] + 1); return 2; }
    perseq = calloc((size_t)total * MAX_KNOCKS, sizeof(int));
    char line[512];
    nports = 0;
    for (int i = 0; i < total && fgets(line, sizeof line, f); i++) {
      int n = 0;
      for (char *tok = strtok(line, " \n"); tok && n < MAX_KNOCKS; tok = strtok(NULL, " \n")) {
        perseq[i * MAX_KNOCKS + n++] = atoi(tok);
      }
      if (i == 0) nports = n;
    }
    fclose(f);
  }
  seq_t *seqs = calloc(total + noise_total, sizeof(seq_t));
  struct sockaddr_in dst = { .sin_family = AF_INET };
  inet_pton(AF_INET, host, &dst.sin_addr);
  int ep = epoll_create1(0);
  double start = now_ms(), hard_stop = start + (seconds + 30) * 1e3;
  int launched = 0, finished = 0, first_active = 0, noise_launched = 0, noise_sent = 0, first_noise = 0;
  struct epoll_event events[256];
  while (finished < total && now_ms() < hard_stop) {
    double now = now_ms();
    while (launched < total && start + launched * 1e3 / rate <= now) {
      seq_t *s = &seqs[launched];
      s->fd = -1;
      s->due = now;
      s->src.sin_family = AF_INET;
      s->src.sin_addr.s_addr = htonl((127u << 24) | ((unsigned)subnet << 16) | ((unsigned)launched & 0xffff));
      launched++;
    }
    while (noise_launched < noise_total && start + noise_launched * 1e3 / noise <= now) {
      seq_t *s = &seqs[total + noise_launched];
      unsigned n = (unsigned)noise_launched;
      s->fd = -1;
      s->due = now;
      s->noise = 1;
      s->src.sin_family = AF_INET;
      s->src.sin_addr.s_addr = htonl((127u << 24) | ((unsigned)((subnet + 100) & 255) << 16) | (n & 0xffff));
      noise_launched++;
    }
    for (int j = first_active; j < launched + noise_launched; j++) {
      /* the sequences first, then the noise knocks (indices total…), each from its first active */
      if (j == launched && first_noise > 0) j = launched + first_noise;
      if (j >= launched + noise_launched) break;
      int i = j < launched ? j : total + (j - launched);
      seq_t *s = &seqs[i];
      int np = s->noise ? 1 : nports;
      if (s->done != 0) {
        if (j < launched && j == first_active) first_active++;
        else if (j >= launched && j - launched == first_noise) first_noise++;
        continue;
      }
      if (s->busy) {
        if (now - s->sent > 1000) { close(s->fd); s->fd = -1; s->busy = 0; s->step++; s->due = now + gap; } /* timed out: counts as sent */
        continue;
      }
      if (s->due > now) continue;
      if (s->step == np) {
        s->done = now;
        if (s->noise) noise_sent++; else finished++;
        if (s->fd >= 0) close(s->fd);
        s->fd = -1;
        continue;
      }
      dst.sin_port = htons(s->noise ? noise_ports[(i - total) % nnp]
                                    : perseq ? perseq[i * MAX_KNOCKS + s->step] : ports[s->step]);
      if (udp) {
        if (s->fd < 0) {
          s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
          if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&s->src, sizeof s->src) < 0) { s->done = -1; finished++; continue; }
        }
        sendto(s->fd, "", 1, 0, (struct sockaddr *)&dst, sizeof dst);
        s->step++;
        s->due = now + (s->step == np ? 0 : gap);
        continue;
      }
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (fd < 0 || bind(fd, (struct sockaddr *)&s->src, sizeof s->src) < 0) { if (fd >= 0) close(fd); s->done = -1; if (!s->noise) finished++; continue; }
      if (connect(fd, (struct sockaddr *)&dst, sizeof dst) == 0 || errno != EINPROGRESS) {
        close(fd); s->step++; s->due = now + gap; continue; /* accepted or refused at once */
      }
      struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (unsigned)i };
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      s->fd = fd; s->busy = 1; s->sent = now;
    }
    int n = epoll_wait(ep, events, 256, 1);
    double t = now_ms();
    for (int k = 0; k < n; k++) {
      seq_t *s = &seqs[events[k].data.u32];
      if (!s->busy) continue;
      close(s->fd); /* closing removes it from epoll */
      s->fd = -1; s->busy = 0; s->step++;
      s->due = t + (s->step == (s->noise ? 1 : nports) ? 0 : gap);
    }
  }
  double elapsed = (now_ms() - start) / 1e3;
  int sent = 0;
  for (int i = 0; i < launched; i++) if (seqs[i].done > 0) sent++;
  printf("{\"sent\":%d,\"noise\":%d,\"offered\":%g,\"achieved\":%g,\"seconds\":%g,\"sequences\":[", sent, noise_sent, rate,
         sent / (elapsed > seconds ? elapsed : seconds), elapsed);
  int comma = 0;
  for (int i = 0; i < launched; i++) {
    if (seqs[i].done <= 0) continue;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &seqs[i].src.sin_addr, ip, sizeof ip);
    printf("%s[\"%s\",%.3f]", comma++ ? "," : "", ip, seqs[i].done);
  }
  printf("]}\n");
  return 0;
}
