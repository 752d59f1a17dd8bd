/*
 * nfq-delay: holds every packet the kernel queues to it (iptables NFQUEUE) for a set time, and
 * optionally serialises it through a rate bottleneck with a bounded buffer, then lets it go.
 * It stands in for netem, which the test machines' kernels lack.
 *
 * Each queue is one direction of the emulated link and has its own FIFO: a packet's release
 * time is (time it leaves the bottleneck) + delay, which never decreases within a queue, so the
 * FIFO stays in order and one batch verdict releases every due packet at once.
 *
 * Usage: nfq-delay --params FILE [--ready FILE] --queue N [--queue M ...]
 * The params file holds `key=value` lines (delay_ms, rate_mbit, buffer_ms) and is read again on
 * SIGHUP; SIGTERM or SIGINT ends the program. It must run in the namespace whose iptables queue
 * the packets (queues are per network namespace).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUES 4
#define RING (1u << 18)            /* packets held per direction: far above a 1 Gbit/s x 250 ms BDP */
#define RECV_BATCH 512             /* messages read before releasing due packets again */

struct held { uint32_t id; int64_t release; };

struct direction {
  struct nfq_q_handle *qh;
  uint16_t num;
  struct held *ring;
  uint32_t head, tail;             /* head: oldest held; tail: next free slot */
  int64_t bottleneck_free;         /* when the emulated bottleneck finishes its current backlog */
  int64_t last_release;
  uint64_t passed, dropped;
};

static struct { double delay_ms, rate_mbit, buffer_ms; } params = { 110.0, 0.0, 100.0 };
static const char *params_path;
static volatile sig_atomic_t reload = 0, stop = 0;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Reads the params file; an unreadable file or a bad value keeps the previous setting. */
static void read_params(void) {
  FILE *f = fopen(params_path, "r");
  if (f == NULL) { fprintf(stderr, "nfq-delay: cannot read %s: %s\n", params_path, strerror(errno)); return; }
  char line[256];
  for (int n = 0; n < 64 && fgets(line, sizeof line, f) != NULL; n++) {
    char key[64];
    double v;
    if (sscanf(line, " %63[a-z_] = %lf", key, &v) != 2 || v < 0 || v > 1e7) continue;
    if (strcmp(key, "delay_ms") == 0) params.delay_ms = v;
    else if (strcmp(key, "rate_mbit") == 0) params.rate_mbit = v;
    else if (strcmp(key, "buffer_ms") == 0) params.buffer_ms = v;
  }
  fclose(f);
  fprintf(stderr, "nfq-delay: delay %.3f ms, rate %.1f Mbit/s (0: none), buffer %.1f ms\n",
          params.delay_ms, params.rate_mbit, params.buffer_ms);
}

static void on_signal(int sig) {
  if (sig == SIGHUP) reload = 1; else stop = 1;
}

/*
 * The bytes the packet takes on an Ethernet wire: its IP length plus a 14-byte frame header, and
 * for a GSO super-packet (up to 64 KiB handed over whole) the headers of every segment it stands
 * for, so a 1 Gbit/s bottleneck lets through what a real one would (about 119.5 MB/s of TCP payload).
 */
static uint32_t wire_length(struct nfq_data *nfad) {
  unsigned char *p;
  int n = nfq_get_payload(nfad, &p);
  uint32_t len, hdr;
  if (n >= 20 && (p[0] >> 4) == 4) {
    len = (uint32_t)p[2] << 8 | p[3];
    hdr = (uint32_t)(p[0] & 0xf) * 4;
    if (len == 0) len = (uint32_t)n;
    if (p[9] == 6 && n >= (int)hdr + 13) hdr += (uint32_t)(p[hdr + 12] >> 4) * 4; /* TCP */
  } else if (n >= 40 && (p[0] >> 4) == 6) {
    len = 40 + ((uint32_t)p[4] << 8 | p[5]);
    hdr = 40;
  } else {
    return (n > 0 ? (uint32_t)n : 1500) + 14;
  }
  if (len <= 1500 || hdr >= 1500 || len <= hdr) return len + 14;
  uint32_t mss = 1500 - hdr, segments = (len - hdr + mss - 1) / mss;
  return len + (segments - 1) * hdr + segments * 14;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfad, void *data) {
  (void)msg;
  struct direction *d = data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfad);
  if (ph == NULL) return 0;
  uint32_t id = ntohl(ph->packet_id);
  int64_t t = now_ns();
  int64_t leaves = t;
  if (params.rate_mbit > 0) {
    int64_t start = d->bottleneck_free > t ? d->bottleneck_free : t;
    if (start - t > (int64_t)(params.buffer_ms * 1e6) || d->tail - d->head >= RING) {
      d->dropped++;                /* tail drop: the bottleneck's buffer is full */
      return nfq_set_verdict(qh, id, NF_DROP, 0, NULL);
    }
    leaves = start + (int64_t)(wire_length(nfad) * 8.0 * 1000.0 / params.rate_mbit);
    d->bottleneck_free = leaves;
  } else if (d->tail - d->head >= RING) {
    d->dropped++;
    return nfq_set_verdict(qh, id, NF_DROP, 0, NULL);
  }
  int64_t release = leaves + (int64_t)(params.delay_ms * 1e6);
  if (release < d->last_release) release = d->last_release; /* a shorter delay never reorders */
  d->last_release = release;
  d->ring[d->tail % RING] = (struct held){ id, release };
  d->tail++;
  return 0;
}

/* Releases every due packet of one direction with one verdict; returns ns until the next is due. */
static int64_t release_due(struct direction *d, int64_t t) {
  uint32_t last = 0;
  int any = 0;
  while (d->head != d->tail && d->ring[d->head % RING].release <= t) {
    last = d->ring[d->head % RING].id;
    d->head++;
    d->passed++;
    any = 1;
  }
  if (any) nfq_set_verdict_batch(d->qh, last, NF_ACCEPT);
  return d->head == d->tail ? INT64_MAX : d->ring[d->head % RING].release - t;
}

int main(int argc, char **argv) {
  struct direction dirs[MAX_QUEUES];
  int ndirs = 0;
  const char *ready_path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--params") == 0 && i + 1 < argc) params_path = argv[++i];
    else if (strcmp(argv[i], "--ready") == 0 && i + 1 < argc) ready_path = argv[++i];
    else if (strcmp(argv[i], "--queue") == 0 && i + 1 < argc && ndirs < MAX_QUEUES) {
      char *end;
      long q = strtol(argv[++i], &end, 10);
      if (*end != '\0' || q < 0 || q > 65535) { fprintf(stderr, "nfq-delay: bad queue number %s\n", argv[i]); return 2; }
      memset(&dirs[ndirs], 0, sizeof dirs[ndirs]);
      dirs[ndirs++].num = (uint16_t)q;
    } else {
      fprintf(stderr, "usage: nfq-delay --params FILE [--ready FILE] --queue N [--queue M ...] (at most %d)\n", MAX_QUEUES);
      return 2;
    }
  }
  if (params_path == NULL || ndirs == 0) { fprintf(stderr, "nfq-delay: --params and at least one --queue are required\n"); return 2; }
  read_params();

  struct sigaction sa = { 0 };
  sa.sa_handler = on_signal;
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  struct nfq_handle *h = nfq_open();
  if (h == NULL) { perror("nfq-delay: nfq_open"); return 1; }
  for (int i = 0; i < ndirs; i++) {
    struct direction *d = &dirs[i];
    d->ring = calloc(RING, sizeof *d->ring);
    d->qh = nfq_create_queue(h, d->num, on_packet, d);
    if (d->ring == NULL || d->qh == NULL) { fprintf(stderr, "nfq-delay: cannot bind queue %u (another listener?)\n", d->num); return 1; }
    /* 128 bytes hold the IP and TCP headers. Without NFQA_CFG_F_GSO the kernel cuts GSO
       super-packets into wire-sized segments before queueing them: dearer than taking them
       whole, but the loss rules after the queue then drop single packets, as a real link does. */
    if (nfq_set_mode(d->qh, NFQNL_COPY_PACKET, 128) < 0) { perror("nfq-delay: nfq_set_mode"); return 1; }
    nfq_set_queue_maxlen(d->qh, RING);
  }
  int fd = nfq_fd(h);
  int big = 64 << 20, one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0) nfnl_rcvbufsiz(nfq_nfnlh(h), big);
  setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

  if (ready_path != NULL) {
    FILE *f = fopen(ready_path, "w");
    if (f == NULL) { perror("nfq-delay: ready file"); return 1; }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
  }

  static char buf[1 << 16];
  while (!stop) {
    if (reload) { reload = 0; read_params(); }
    int64_t t = now_ns(), wait = INT64_MAX;
    for (int i = 0; i < ndirs; i++) {
      int64_t w = release_due(&dirs[i], t);
      if (w < wait) wait = w;
    }
    if (wait > 200000000LL) wait = 200000000LL; /* wake up now and then for signals */
    struct timespec ts = { wait / 1000000000LL, wait % 1000000000LL };
    struct pollfd pfd = { fd, POLLIN, 0 };
    int r = ppoll(&pfd, 1, &ts, NULL);
    if (r < 0 && errno != EINTR) { perror("nfq-delay: ppoll"); break; }
    if (r <= 0) continue;
    for (int n = 0; n < RECV_BATCH; n++) {
      ssize_t len = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (len < 0) {
        if (errno == ENOBUFS) continue; /* the kernel dropped messages; their packets time out in the queue */
        break;
      }
      nfq_handle_packet(h, buf, (int)len);
    }
  }
  for (int i = 0; i < ndirs; i++) {
    fprintf(stderr, "nfq-delay: queue %u passed %llu dropped %llu\n", dirs[i].num,
            (unsigned long long)dirs[i].passed, (unsigned long long)dirs[i].dropped);
    nfq_destroy_queue(dirs[i].qh);
  }
  nfq_close(h);
  return 0;
}
