/*
 * dune_io: event-driven I/O on descriptors Node does not know about, for the impairment
 * engine's NFQUEUE front end (packages/impair). Separate from dune_native.c, whose
 * functions it does not change; dune_native.c's Init calls dune_io_init to add these.
 *
 * - fdWatch(fd, cb) / fdUnwatch(id): a libuv poll handle on Node's own loop calls cb()
 *   whenever fd is readable (no thread, no extra wake-up latency);
 * - fdRef(id, ref): whether a watch keeps Node's loop (the process) alive; a new one does;
 * - recvInto(fd, buf): nonblocking, reads every queued datagram that fits into buf
 *   (recvmmsg, up to 64 a system call);
 * - sockTimestamp(fd), realtimeUs(): the kernel's packet timestamps on, and the clock they use;
 * - timerfdOpen() / timerfdSet(fd, delayUs): a timer as a descriptor, for fdWatch: readable
 *   from its expiry until set again (0: expired at once, and readable on every turn of the
 *   loop until then: a spin that allocates nothing; < 0: disarmed);
 * - clockInto(f64): CLOCK_MONOTONIC and CLOCK_REALTIME in µs, written into a Float64Array: a
 *   clock read that allocates nothing on the JavaScript heap (performance.now() allocates
 *   an array per call in Node 20, and the engine reads the clock in a spin);
 * - rawOpen(nsPath, family, mark) / rawSend(fd, buf): a raw IP socket (IPPROTO_RAW, header
 *   included) inside a namespace whose packets carry a mark, to inject the duplicates
 *   NFQUEUE verdicts cannot make.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

/* A lab's engine watches one socket per node namespace: hundreds. The table grows by
 * doubling; entries are allocated one by one, so a poll handle's pointer to its entry stays
 * valid when the table moves. */
#define MAX_WATCHES 65536

struct watch {
  int used;
  int fd;
  uv_poll_t *poll;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  /* Closes the poll handle when its env ends with it still watching (a worker thread that
   * exits or is terminated): Node refuses to close a loop that still has handles. */
  napi_async_cleanup_hook_handle hook;
};

static int grow_table(void);

/* One table for the process, and a lab engine's worker threads each watch their own sockets
 * (an engine with --threads): the table and the slots' `used` are taken under watches_mu. A
 * slot's entry never moves, so a thread reads its own entry without the lock. */
static struct watch **watches;
static int n_watches;
static pthread_mutex_t watches_mu = PTHREAD_MUTEX_INITIALIZER;

/* A free slot's index, reserved (used = 2, not yet watching) and its entry in *out, growing
 * the table when all are taken; -1 at MAX_WATCHES or out of memory. */
static int reserve_slot(struct watch **out) {
  pthread_mutex_lock(&watches_mu);
  int id = -1;
  for (int i = 0; i < n_watches; i++) {
    if (!watches[i]->used) {
      id = i;
      break;
    }
  }
  if (id < 0) id = grow_table();
  if (id >= 0) {
    watches[id]->used = 2;
    *out = watches[id];
  }
  pthread_mutex_unlock(&watches_mu);
  return id;
}

/* The entry of slot `id`, or NULL when there is none. */
static struct watch *slot(int id) {
  pthread_mutex_lock(&watches_mu);
  struct watch *w = id >= 0 && id < n_watches ? watches[id] : NULL;
  pthread_mutex_unlock(&watches_mu);
  return w;
}

static void release_slot(struct watch *w) {
  pthread_mutex_lock(&watches_mu);
  w->used = 0;
  pthread_mutex_unlock(&watches_mu);
}

/* Called with watches_mu held: the table doubled, the first new slot's index (or -1). */
static int grow_table(void) {
  if (n_watches >= MAX_WATCHES) return -1;
  int grown = n_watches == 0 ? 64 : n_watches * 2;
  if (grown > MAX_WATCHES) grown = MAX_WATCHES;
  struct watch **t = realloc(watches, sizeof *t * grown);
  if (!t) return -1;
  watches = t;
  int first = n_watches;
  for (int i = n_watches; i < grown; i++) {
    watches[i] = calloc(1, sizeof **watches);
    if (!watches[i]) {
      n_watches = i;
      return i > first ? first : -1;
    }
  }
  n_watches = grown;
  return first;
}

static napi_value io_throw(napi_env env, int e, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_value code, message, err, num;
  napi_create_string_utf8(env, "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &err);
  napi_create_int32(env, e, &num);
  napi_set_named_property(env, err, "errno", num);
  napi_throw(env, err);
  return NULL;
}

/* A number for JavaScript (an fd, a count, 0 or -errno). */
static napi_value int_value(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  struct watch *w = h->data;
  if (!w || !w->used) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, result;
  napi_get_reference_value(env, w->cb, &cb);
  napi_get_global(env, &recv); /* napi_make_callback wants an object as `this` */
  if (napi_make_callback(env, w->ctx, recv, cb, 0, NULL, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

static void free_poll(uv_handle_t *h) { free(h); }

/* The env's teardown, after the poll handle closed: the slot is free, teardown goes on. */
static void closed_at_teardown(uv_handle_t *h) {
  struct watch *w = h->data;
  free(h);
  napi_async_cleanup_hook_handle hook = w->hook;
  release_slot(w);
  napi_remove_async_cleanup_hook(hook);
}

/* The env of a watch that is still on ends: the handle is stopped and closed (the reference
 * and async context go with the env). */
static void watch_env_gone(napi_async_cleanup_hook_handle hook, void *arg) {
  struct watch *w = arg;
  if (w->used != 1) {
    napi_remove_async_cleanup_hook(hook);
    return;
  }
  w->used = 2; /* no callbacks from here on; still not free */
  uv_poll_stop(w->poll);
  uv_close((uv_handle_t *)w->poll, closed_at_teardown);
}

/* fdWatch(fd: number, cb: () => void): number */
static napi_value FdWatch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "fdWatch(fd, cb)");
    return NULL;
  }
  struct watch *w = NULL;
  int id = reserve_slot(&w);
  if (id < 0) return io_throw(env, EMFILE, "fdWatch");
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    release_slot(w);
    return io_throw(env, EINVAL, "napi_get_uv_event_loop");
  }
  w->poll = malloc(sizeof(uv_poll_t));
  if (!w->poll) {
    release_slot(w);
    return io_throw(env, ENOMEM, "fdWatch");
  }
  int rc = uv_poll_init(loop, w->poll, fd);
  if (rc < 0) {
    free(w->poll);
    release_slot(w);
    return io_throw(env, -rc, "uv_poll_init");
  }
  w->poll->data = w;
  w->fd = fd;
  w->env = env;
  napi_create_reference(env, argv[1], 1, &w->cb);
  napi_value name;
  napi_create_string_utf8(env, "dune:fdWatch", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &w->ctx);
  pthread_mutex_lock(&watches_mu);
  w->used = 1;
  pthread_mutex_unlock(&watches_mu);
  rc = uv_poll_start(w->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    release_slot(w);
    uv_close((uv_handle_t *)w->poll, free_poll);
    napi_delete_reference(env, w->cb);
    napi_async_destroy(env, w->ctx);
    return io_throw(env, -rc, "uv_poll_start");
  }
  napi_add_async_cleanup_hook(env, watch_env_gone, w, &w->hook);
  return int_value(env, id);
}

/* The one int32 argument of a function called as `usage` (an fd, a watch id); -1 with a JS TypeError thrown. */
static int get_int_arg(napi_env env, napi_callback_info info, const char *usage, int32_t *out) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], out) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", usage);
    return -1;
  }
  return 0;
}

/* fdUnwatch(id: number): void */
static napi_value FdUnwatch(napi_env env, napi_callback_info info) {
  int32_t id;
  if (get_int_arg(env, info, "fdUnwatch(id)", &id) < 0) return NULL;
  struct watch *w = slot(id);
  if (w == NULL) {
    napi_throw_type_error(env, "EINVAL", "fdUnwatch(id)");
    return NULL;
  }
  /* Only the thread that watches (its env) unwatches: another thread's id is not ours to stop. */
  if (w->used == 1 && w->env == env) {
    uv_poll_stop(w->poll);
    w->poll->data = NULL;
    uv_close((uv_handle_t *)w->poll, free_poll);
    napi_delete_reference(env, w->cb);
    napi_async_destroy(env, w->ctx);
    napi_remove_async_cleanup_hook(w->hook);
    release_slot(w);
  }
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* fdRef(id: number, ref: boolean): void   uv_ref / uv_unref of the watch's poll handle. */
static napi_value FdRef(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t id;
  bool ref = true;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &id) != napi_ok || napi_get_value_bool(env, argv[1], &ref) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "fdRef(id, ref)");
    return NULL;
  }
  struct watch *w = slot(id);
  if (w != NULL && w->used == 1 && w->env == env) {
    if (ref) uv_ref((uv_handle_t *)w->poll);
    else uv_unref((uv_handle_t *)w->poll);
  }
  return NULL;
}

/*
 * recvInto(fd: number, buf: Buffer): number
 * Reads queued datagrams into buf back to back (each padded to 4 bytes), without waiting,
 * while room for another is left: recvmmsg into slots of SLOT bytes (up to MAX_BATCH per
 * system call), then packed down. One call reads a whole burst of NFQUEUE packets in a few
 * system calls instead of two (peek, read) per packet.
 * Returns the bytes read (0: nothing queued), or -errno (e.g. -ENOBUFS: the kernel dropped
 * messages because the socket's buffer was full; the socket stays usable).
 */
#define SLOT (65536 + 1024)
#define MAX_BATCH 64

static napi_value RecvInto(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  void *data;
  size_t cap;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_buffer_info(env, argv[1], &data, &cap) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "recvInto(fd, buffer)");
    return NULL;
  }
  char *buf = data;
  size_t used = 0;
  int err = 0;
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  for (;;) {
    size_t room = cap - used;
    size_t slots = room / SLOT;
    if (slots > MAX_BATCH) slots = MAX_BATCH;
    if (slots == 0) {
      /* A small buffer (or the tail of one): one datagram, truncated if it must be. */
      if (used > 0 && room < SLOT) break;
      slots = 1;
    }
    size_t slot = slots == 1 && room < SLOT ? room : SLOT;
    memset(msgs, 0, sizeof msgs[0] * slots);
    for (size_t i = 0; i < slots; i++) {
      iov[i].iov_base = buf + used + i * slot;
      iov[i].iov_len = slot;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n;
    do {
      n = recvmmsg(fd, msgs, (unsigned)slots, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
      break;
    }
    if (n == 0) break;
    /* Pack: datagram i sits at used + i * slot; each moves down to the packed end (never up). */
    size_t at = used;
    for (int i = 0; i < n; i++) {
      size_t len = msgs[i].msg_len > slot ? slot : msgs[i].msg_len;
      char *from = buf + used + (size_t)i * slot;
      if (from != buf + at) memmove(buf + at, from, len);
      at += len;
      /* nfnetlink_queue ends a packet message with its payload unpadded (nlmsg_len = skb->len),
       * so the next datagram would start unaligned: pad each datagram to 4 bytes, as a reader
       * walking messages by NLMSG_ALIGN(nlmsg_len) expects. */
      while ((at & 3) && at < cap) buf[at++] = 0;
    }
    used = at;
    if ((size_t)n < slots) break; /* drained */
  }
  napi_value out;
  napi_create_int64(env, (used == 0 && err) ? -(int64_t)err : (int64_t)used, &out);
  return out;
}

/*
 * sockTimestamp(fd: number): number   (0, or -errno)
 * SO_TIMESTAMP on a socket. On any socket but a unix one this turns the kernel's packet
 * timestamps on (net_enable_timestamp), after which nfnetlink_queue stamps every packet it
 * queues (NFQA_TIMESTAMP: the skb's receive stamp, else the time of queueing).
 */
static napi_value SockTimestamp(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (get_int_arg(env, info, "sockTimestamp(fd)", &fd) < 0) return NULL;
  int one = 1;
  int r = setsockopt(fd, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof one);
  return int_value(env, r < 0 ? -errno : 0);
}

/* realtimeUs(): number   CLOCK_REALTIME in µs (the clock NFQA_TIMESTAMP is in). */
static napi_value RealtimeUs(napi_env env, napi_callback_info info) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  napi_value out;
  napi_create_double(env, (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3, &out);
  return out;
}

/* timerfdOpen(): number   a CLOCK_MONOTONIC timerfd (nonblocking), or throws. */
static napi_value TimerfdOpen(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) return io_throw(env, errno, "timerfd_create");
  return int_value(env, fd);
}

/* timerfdSet(fd: number, delayUs: number): number   0 or -errno. Setting resets the expiry
 * count, so the descriptor is readable again only once the new time has come. */
static napi_value TimerfdSet(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  double us;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_double(env, argv[1], &us) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "timerfdSet(fd, delayUs)");
    return NULL;
  }
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  if (us >= 0) {
    /* 0 would disarm: the earliest time that arms it is 1 ns. */
    long long ns = us * 1000.0 < 1.0 ? 1 : (long long)(us * 1000.0);
    its.it_value.tv_sec = ns / 1000000000LL;
    its.it_value.tv_nsec = ns % 1000000000LL;
  }
  int r = timerfd_settime(fd, 0, &its, NULL);
  return int_value(env, r < 0 ? -errno : 0);
}

/* clockInto(out: Float64Array): undefined   out[0] = CLOCK_MONOTONIC µs, out[1] = CLOCK_REALTIME µs. */
static napi_value ClockInto(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (argc < 1 || napi_is_typedarray(env, argv[0], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float64_array || length < 2) {
    napi_throw_type_error(env, "EINVAL", "clockInto(Float64Array of 2)");
    return NULL;
  }
  double *out = data;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  out[0] = (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
  clock_gettime(CLOCK_REALTIME, &ts);
  out[1] = (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
  return NULL;
}

/* rawOpen(nsPath: string | null, family: 4 | 6, mark: number): number */
static napi_value RawOpen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t family, mark;
  if (argc < 3 || napi_get_value_int32(env, argv[1], &family) != napi_ok || napi_get_value_int32(env, argv[2], &mark) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "rawOpen(nsPath, family, mark)");
    return NULL;
  }
  char ns_path[4096] = "";
  napi_valuetype t;
  napi_typeof(env, argv[0], &t);
  if (t == napi_string) {
    size_t len;
    napi_get_value_string_utf8(env, argv[0], ns_path, sizeof ns_path, &len);
  }
  int back = -1;
  if (ns_path[0]) {
    back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int target = open(ns_path, O_RDONLY | O_CLOEXEC);
    if (back < 0 || target < 0 || setns(target, CLONE_NEWNET) < 0) {
      int e = errno;
      if (target >= 0) close(target);
      if (back >= 0) close(back);
      return io_throw(env, e, "rawOpen: entering the namespace");
    }
    close(target);
  }
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_RAW);
  int e = errno;
  if (back >= 0) {
    if (setns(back, CLONE_NEWNET) < 0) {
      perror("dune_io: setns back");
      abort();
    }
    close(back);
  }
  if (fd < 0) return io_throw(env, e, "socket(SOCK_RAW)");
  uint32_t m = (uint32_t)mark;
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &m, sizeof m) < 0) {
    e = errno;
    close(fd);
    return io_throw(env, e, "setsockopt(SO_MARK)");
  }
  int size = 4 * 1024 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
  return int_value(env, fd);
}

/* rawSend(fd: number, packet: Buffer): number   (bytes sent, or -errno) */
static napi_value RawSend(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  void *data;
  size_t len;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "rawSend(fd, buffer)");
    return NULL;
  }
  const uint8_t *p = data;
  ssize_t n = -1;
  errno = EINVAL;
  if (len >= 20 && (p[0] >> 4) == 4) {
    struct sockaddr_in sa = {.sin_family = AF_INET};
    memcpy(&sa.sin_addr, p + 16, 4);
    n = sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa);
  } else if (len >= 40 && (p[0] >> 4) == 6) {
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    memcpy(&sa.sin6_addr, p + 24, 16);
    n = sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa);
  }
  napi_value out;
  napi_create_int64(env, n < 0 ? -(int64_t)errno : (int64_t)n, &out);
  return out;
}

/*
 * The UDP proxy's batched sockets (packages/impair/src/proxy): one system call moves up to
 * UDP_BATCH datagrams each way instead of one through Node's dgram.
 *
 * udpOpen(family, bindAddr, bindPort, connectAddr, connectPort, bufBytes): number
 *   A nonblocking UDP socket, bound (bindAddr null: any address, port 0: any port; an IPv6
 *   socket bound to an address is IPV6_V6ONLY) and connected when connectAddr is given.
 *   The fd, or throws.
 * udpPort(fd): number   the bound local port.
 * udpClose(fd): void
 * udpRecv(fd, buf, meta): number
 *   recvmmsg into buf's slots of UDP_SLOT bytes (as many as fit, up to UDP_BATCH). Datagram i
 *   sits at i * UDP_SLOT, its metadata at meta[i * 8 ..]: length, source port, family (4|6),
 *   then the source address as 4 int32 words (IPv4: the first). Returns the count, 0 when
 *   nothing is queued, or -errno.
 * udpSend(fd, bufs, count, meta): number
 *   sendmmsg of bufs[0..count) (meta null: a connected socket; else meta[i * 8 ..] as above
 *   gives each destination). Returns how many went (the rest: the send buffer is full), or -errno.
 */
#define UDP_SLOT 65536
#define UDP_BATCH 64

static int parse_addr(napi_env env, napi_value v, int family, struct sockaddr_storage *ss, int port, socklen_t *len) {
  char text[64] = "";
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_string) {
    size_t l;
    napi_get_value_string_utf8(env, v, text, sizeof text, &l);
  }
  memset(ss, 0, sizeof *ss);
  if (family == 6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (text[0] && inet_pton(AF_INET6, text, &a->sin6_addr) != 1) return -1;
    *len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (text[0] && inet_pton(AF_INET, text, &a->sin_addr) != 1) return -1;
    *len = sizeof *a;
  }
  return text[0] ? 1 : 0;
}

static napi_value UdpOpen(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t family, bport, cport, bufbytes;
  if (argc < 6 || napi_get_value_int32(env, argv[0], &family) != napi_ok || napi_get_value_int32(env, argv[2], &bport) != napi_ok ||
      napi_get_value_int32(env, argv[4], &cport) != napi_ok || napi_get_value_int32(env, argv[5], &bufbytes) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "udpOpen(family, bindAddr, bindPort, connectAddr, connectPort, bufBytes)");
    return NULL;
  }
  struct sockaddr_storage b, c;
  socklen_t blen, clen;
  int hasb = parse_addr(env, argv[1], family, &b, bport, &blen);
  int hasc = parse_addr(env, argv[3], family, &c, cport, &clen);
  if (hasb < 0 || hasc < 0) return io_throw(env, EINVAL, "udpOpen: not an address");
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return io_throw(env, errno, "socket(SOCK_DGRAM)");
  if (bufbytes > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufbytes, sizeof bufbytes);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufbytes, sizeof bufbytes);
  }
  if (family == 6 && hasb) {
    int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if ((hasb || bport) && bind(fd, (struct sockaddr *)&b, blen) < 0) {
    int e = errno;
    close(fd);
    return io_throw(env, e, "udpOpen: bind");
  }
  if (hasc && connect(fd, (struct sockaddr *)&c, clen) < 0) {
    int e = errno;
    close(fd);
    return io_throw(env, e, "udpOpen: connect");
  }
  return int_value(env, fd);
}

static napi_value UdpPort(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (get_int_arg(env, info, "udpPort(fd)", &fd) < 0) return NULL;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return io_throw(env, errno, "getsockname");
  int port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return int_value(env, port);
}

static napi_value UdpClose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc >= 1 && napi_get_value_int32(env, argv[0], &fd) == napi_ok && fd >= 0) close(fd);
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static int get_i32_array(napi_env env, napi_value v, int32_t **out, size_t *n) {
  napi_typedarray_type type;
  void *data;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, n, &data, &ab, &off) != napi_ok || type != napi_int32_array) return -1;
  *out = data;
  return 0;
}

static napi_value UdpRecv(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  void *data;
  size_t cap, mlen;
  int32_t *meta;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_buffer_info(env, argv[1], &data, &cap) != napi_ok ||
      get_i32_array(env, argv[2], &meta, &mlen) != 0) {
    napi_throw_type_error(env, "EINVAL", "udpRecv(fd, buffer, meta: Int32Array)");
    return NULL;
  }
  size_t slots = cap / UDP_SLOT;
  if (slots > UDP_BATCH) slots = UDP_BATCH;
  if (slots > mlen / 8) slots = mlen / 8;
  if (slots == 0) {
    napi_throw_range_error(env, "EINVAL", "udpRecv: buffer or meta too small for one datagram");
    return NULL;
  }
  struct mmsghdr msgs[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  struct sockaddr_storage from[UDP_BATCH];
  memset(msgs, 0, sizeof msgs[0] * slots);
  for (size_t i = 0; i < slots; i++) {
    iov[i].iov_base = (char *)data + i * UDP_SLOT;
    iov[i].iov_len = UDP_SLOT;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
  }
  int n;
  do {
    n = recvmmsg(fd, msgs, (unsigned)slots, MSG_DONTWAIT, NULL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) n = (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
  for (int i = 0; i < n; i++) {
    int32_t *m = meta + i * 8;
    m[0] = (int32_t)msgs[i].msg_len;
    memset(m + 4, 0, 16);
    if (from[i].ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&from[i];
      m[1] = ntohs(a->sin6_port);
      m[2] = 6;
      memcpy(m + 4, &a->sin6_addr, 16);
    } else {
      struct sockaddr_in *a = (struct sockaddr_in *)&from[i];
      m[1] = ntohs(a->sin_port);
      m[2] = 4;
      memcpy(m + 4, &a->sin_addr, 4);
    }
  }
  return int_value(env, n);
}

static napi_value UdpSend(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd, count;
  int32_t *meta = NULL;
  size_t mlen = 0;
  bool is_arr = false;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_is_array(env, argv[1], &is_arr) != napi_ok || !is_arr ||
      napi_get_value_int32(env, argv[2], &count) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "udpSend(fd, buffers, count, meta: Int32Array | null)");
    return NULL;
  }
  napi_valuetype mt;
  napi_typeof(env, argv[3], &mt);
  if (mt != napi_null && mt != napi_undefined && get_i32_array(env, argv[3], &meta, &mlen) != 0) {
    napi_throw_type_error(env, "EINVAL", "udpSend: meta must be an Int32Array or null");
    return NULL;
  }
  struct mmsghdr msgs[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  struct sockaddr_storage to[UDP_BATCH];
  int sent = 0;
  while (sent < count) {
    int k = count - sent > UDP_BATCH ? UDP_BATCH : count - sent;
    memset(msgs, 0, sizeof msgs[0] * k);
    for (int i = 0; i < k; i++) {
      napi_value el;
      void *d;
      size_t len;
      if (napi_get_element(env, argv[1], (uint32_t)(sent + i), &el) != napi_ok || napi_get_buffer_info(env, el, &d, &len) != napi_ok) {
        napi_throw_type_error(env, "EINVAL", "udpSend: buffers must hold Buffers");
        return NULL;
      }
      iov[i].iov_base = d;
      iov[i].iov_len = len;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      if (meta) {
        if ((size_t)(sent + i) * 8 + 8 > mlen) {
          napi_throw_range_error(env, "EINVAL", "udpSend: meta too short");
          return NULL;
        }
        int32_t *m = meta + (sent + i) * 8;
        memset(&to[i], 0, sizeof to[i]);
        if (m[2] == 6) {
          struct sockaddr_in6 *a = (struct sockaddr_in6 *)&to[i];
          a->sin6_family = AF_INET6;
          a->sin6_port = htons((uint16_t)m[1]);
          memcpy(&a->sin6_addr, m + 4, 16);
          msgs[i].msg_hdr.msg_namelen = sizeof *a;
        } else {
          struct sockaddr_in *a = (struct sockaddr_in *)&to[i];
          a->sin_family = AF_INET;
          a->sin_port = htons((uint16_t)m[1]);
          memcpy(&a->sin_addr, m + 4, 4);
          msgs[i].msg_hdr.msg_namelen = sizeof *a;
        }
        msgs[i].msg_hdr.msg_name = &to[i];
      }
    }
    int n;
    do {
      n = sendmmsg(fd, msgs, (unsigned)k, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (sent > 0 || errno == EAGAIN || errno == EWOULDBLOCK) break;
      napi_value out;
      napi_create_int32(env, -errno, &out);
      return out;
    }
    sent += n;
    if (n < k) break;
  }
  return int_value(env, sent);
}

void dune_io_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"fdWatch", NULL, FdWatch, NULL, NULL, NULL, napi_default, NULL},
      {"fdUnwatch", NULL, FdUnwatch, NULL, NULL, NULL, napi_default, NULL},
      {"fdRef", NULL, FdRef, NULL, NULL, NULL, napi_default, NULL},
      {"recvInto", NULL, RecvInto, NULL, NULL, NULL, napi_default, NULL},
      {"rawOpen", NULL, RawOpen, NULL, NULL, NULL, napi_default, NULL},
      {"rawSend", NULL, RawSend, NULL, NULL, NULL, napi_default, NULL},
      {"sockTimestamp", NULL, SockTimestamp, NULL, NULL, NULL, napi_default, NULL},
      {"realtimeUs", NULL, RealtimeUs, NULL, NULL, NULL, napi_default, NULL},
      {"clockInto", NULL, ClockInto, NULL, NULL, NULL, napi_default, NULL},
      {"timerfdOpen", NULL, TimerfdOpen, NULL, NULL, NULL, napi_default, NULL},
      {"timerfdSet", NULL, TimerfdSet, NULL, NULL, NULL, napi_default, NULL},
      {"udpOpen", NULL, UdpOpen, NULL, NULL, NULL, napi_default, NULL},
      {"udpPort", NULL, UdpPort, NULL, NULL, NULL, napi_default, NULL},
      {"udpClose", NULL, UdpClose, NULL, NULL, NULL, napi_default, NULL},
      {"udpRecv", NULL, UdpRecv, NULL, NULL, NULL, napi_default, NULL},
      {"udpSend", NULL, UdpSend, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
