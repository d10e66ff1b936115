/*
 * dune_native: the few system calls Node cannot make by itself, for the agent's kernel layer.
 *
 * - netlink sockets opened inside a given network namespace (nlOpen) and raw send/recv on them;
 * - open(2) inside a namespace (openInNs), so /proc/sys/net writes land in that namespace;
 *   writes of many files in one visit per namespace, many namespaces on a few threads
 *   (writeInNsMany: the nodes' sysctls);
 * - network namespaces created and deleted the way iproute2 does it (bind mounts under
 *   /run/netns), many at once on a few threads;
 * - the pid at the other end of a unix socket (peerPid: SO_PEERCRED).
 *
 * Why setns on Node's main thread is safe here: every function that enters another
 * namespace does so, makes its one system call, and switches back before returning to
 * JavaScript; nothing else runs on that thread in between. A socket (and an fd from open)
 * keeps acting in the namespace it was created in whatever the thread does afterwards, so the
 * fds returned stay bound to their namespace. Namespace creation runs on its own pthreads,
 * which unshare() and then simply exit.
 *
 * Errors are thrown as JS Errors with `code` ("EPERM", ...), `errno` (positive) and `syscall`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <dirent.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define NAPI_VERSION 8
#include <node_api.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define NETNS_RUN_DIR "/run/netns"

/* The new mount API (Linux 5.2+), by number: glibc's <sys/mount.h> and <linux/mount.h> clash. */
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#ifndef FSMOUNT_CLOEXEC
#define FSMOUNT_CLOEXEC 0x00000001
#endif
#define DUNE_FSCONFIG_CMD_CREATE 6

/*
 * /proc/sys/net, looked up by path, costs in proportion to the number of network namespaces
 * on the host: each namespace that has been looked at has its own "net" dentry under the one
 * /proc/sys, all with the same name and parent, so every lookup walks that whole hash chain
 * (proc's d_compare tells them apart by the looker's namespace, under a global lock). With
 * 4,000 namespaces one open cost ~2 ms (measured: writing one sysctl in each of 4,000 new
 * namespaces took 8.8 s against 0.73 s without it; 1,000: 0.35 s against 0.25 s).
 *
 * So files under /proc are opened below a procfs instance of our own, attached nowhere
 * (fsopen + fsmount: never visible in any mount table, freed with its fd), replaced every
 * PROC_REFRESH namespaces so that its chains stay short. Where the kernel cannot make one,
 * paths are opened as they are.
 */
#define PROC_REFRESH 64

struct proc_handle {
  int fd;     /* -1: none yet; -2: unavailable, use paths */
  int uses;   /* namespaces looked at through this instance */
};

static int private_proc(void) {
#if defined(SYS_fsopen) && defined(SYS_fsconfig) && defined(SYS_fsmount)
  int fs = (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
  if (fs < 0) return -1;
  if (syscall(SYS_fsconfig, fs, DUNE_FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
    close(fs);
    return -1;
  }
  int m = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
  close(fs);
  return m;
#else
  return -1;
#endif
}

/* Counts one more namespace looked at through the handle; replaces the instance when due. */
static void proc_next_ns(struct proc_handle *h) {
  if (h->fd >= 0 && ++h->uses >= PROC_REFRESH) {
    close(h->fd);
    h->fd = -1;
  }
}

/* open(path) for a path under /proc/, through the handle's instance when there is one. */
static int proc_open(struct proc_handle *h, const char *path, int flags) {
  if (strncmp(path, "/proc/", 6) != 0 || h->fd == -2) return open(path, flags);
  if (h->fd == -1) {
    h->fd = private_proc();
    h->uses = 0;
    if (h->fd < 0) {
      h->fd = -2;
      return open(path, flags);
    }
  }
  return openat(h->fd, path + 6, flags);
}

static void proc_close(struct proc_handle *h) {
  if (h->fd >= 0) close(h->fd);
  h->fd = -1;
}

/* Node's main thread (openInNs): one instance, kept across calls. */
static __thread struct proc_handle main_proc = {-1, 0};
#define SOCK_BUF_BYTES (16 * 1024 * 1024)
#define RECV_CHUNK (256 * 1024)
#define RECV_MAX_TOTAL (4 * 1024 * 1024)

/* ---------- N-API helpers ---------- */

#define CHECK(call)                                                                     \
  do {                                                                                  \
    if ((call) != napi_ok) {                                                            \
      napi_throw_error(env, "EINTERNAL", "dune_native: N-API call failed: " #call);   \
      return NULL;                                                                      \
    }                                                                                   \
  } while (0)

static const char *errno_code(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ENOBUFS: return "ENOBUFS";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EMSGSIZE: return "EMSGSIZE";
    default: return "EUNKNOWN";
  }
}

static napi_value make_errno_error(napi_env env, int e, const char *syscall_name, const char *what) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s %s: %s (%s)", syscall_name, what ? what : "", strerror(e), errno_code(e));
  napi_value code, message, err, num, sc;
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &err);
  napi_create_int32(env, e, &num);
  napi_set_named_property(env, err, "errno", num);
  napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, err, "syscall", sc);
  return err;
}

static napi_value throw_errno(napi_env env, int e, const char *syscall_name, const char *what) {
  napi_throw(env, make_errno_error(env, e, syscall_name, what));
  return NULL;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* Reads argument `i` as a string into a malloc'd buffer; NULL for null/undefined (if allowed). */
static int get_string(napi_env env, napi_value v, char **out, int allow_null) {
  napi_valuetype t;
  *out = NULL;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (allow_null && (t == napi_null || t == napi_undefined)) return 0;
  if (t != napi_string) {
    napi_throw_type_error(env, "EINVAL", "dune_native: expected a string");
    return -1;
  }
  size_t len = 0;
  napi_get_value_string_utf8(env, v, NULL, 0, &len);
  *out = malloc(len + 1);
  if (!*out) return -1;
  napi_get_value_string_utf8(env, v, *out, len + 1, &len);
  return 0;
}

static int get_int(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "dune_native: expected a number");
    return -1;
  }
  return 0;
}

/* ---------- namespace switching ---------- */

/* Enters the namespace at ns_path; *back receives an fd of the current one. */
static int enter_ns(const char *ns_path, int *back, const char **failed) {
  *back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*back < 0) { *failed = "open(/proc/thread-self/ns/net)"; return -1; }
  int target = open(ns_path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(*back);
    errno = e;
    *failed = "open";
    return -1;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(*back);
    errno = e;
    *failed = "setns";
    return -1;
  }
  close(target);
  return 0;
}

static void leave_ns(int back) {
  /* Switching back cannot reasonably fail (we came from there); if it did, continuing would
   * run Node in the wrong namespace, which is worse than stopping. */
  if (setns(back, CLONE_NEWNET) < 0) {
    perror("dune_native: setns back to the original namespace");
    abort();
  }
  close(back);
}

/* ---------- netlink ---------- */

static int nl_socket(int protocol) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) return -1;
  int one = 1;
  int size = SOCK_BUF_BYTES;
  /* FORCE variants need CAP_NET_ADMIN; fall back to the capped ones. */
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* nlOpen(nsPath: string | null, protocol: number): number */
static napi_value NlOpen(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *ns_path = NULL;
  int32_t protocol = 0;
  if (argc < 2 || get_string(env, argv[0], &ns_path, 1) < 0 || get_int(env, argv[1], &protocol) < 0) {
    free(ns_path);
    return NULL;
  }
  int back = -1;
  const char *failed = NULL;
  if (ns_path && enter_ns(ns_path, &back, &failed) < 0) {
    napi_value r = throw_errno(env, errno, failed, ns_path);
    free(ns_path);
    return r;
  }
  int fd = nl_socket(protocol);
  int e = errno;
  if (ns_path) leave_ns(back);
  if (fd < 0) {
    napi_value r = throw_errno(env, e, "socket(AF_NETLINK)", ns_path ? ns_path : "(current namespace)");
    free(ns_path);
    return r;
  }
  free(ns_path);
  napi_value out;
  CHECK(napi_create_int32(env, fd, &out));
  return out;
}

/* The (fd: number, buf: Buffer) arguments of nlSend and nlSendAsync; -1 with a JS error thrown. */
static int get_fd_buffer(napi_env env, napi_callback_info info, const char *what, int32_t *fd, void **data, size_t *len) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  if (argc < 2 || get_int(env, argv[0], fd) < 0) return -1;
  if (napi_get_buffer_info(env, argv[1], data, len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", what);
    return -1;
  }
  return 0;
}

/* nlSend(fd: number, buf: Buffer): number */
static napi_value NlSend(napi_env env, napi_callback_info info) {
  int32_t fd;
  void *data;
  size_t len;
  if (get_fd_buffer(env, info, "nlSend: expected a Buffer", &fd, &data, &len) < 0) return NULL;
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "sendto(netlink)", "");
  napi_value out;
  CHECK(napi_create_int64(env, (int64_t)n, &out));
  return out;
}

/*
 * A background sender: nlSendAsync copies a batch of netlink requests into a queue that one
 * of SQ_THREADS pthreads sends (each socket's in order), while JavaScript goes on building the next batch. The kernel does
 * a request's work (a route's FIB insert, say) inside sendmsg, so with it on its own thread
 * the agent's message building and the kernel's work overlap on two cores instead of taking
 * turns. nlSendWait blocks until the queue is empty, and throws the first sendto error since
 * the last wait; a socket's requests are sent in the order they were queued. The queue holds
 * at most SQ_MAX_BYTES: nlSendAsync waits for room beyond that.
 */
#define SQ_MAX_BYTES (32 * 1024 * 1024)
/* Senders: a socket's batches always go to the same one (fd % SQ_THREADS), so they stay in order. */
#define SQ_THREADS 2
struct send_job {
  struct send_job *next;
  /* fd < 0: nseg segments, segment k going to fds[k] as data[ends[k-1] .. ends[k]) */
  int fd;
  size_t len;
  uint32_t nseg;
  int32_t *fds;
  uint32_t *ends;
  char *payload; /* the bytes to send: data itself, or after the segment table */
  char data[];
};
static pthread_mutex_t sq_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sq_work[SQ_THREADS] = {PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};
static pthread_cond_t sq_done = PTHREAD_COND_INITIALIZER;
static struct send_job *sq_head[SQ_THREADS], *sq_tail[SQ_THREADS];
static size_t sq_bytes;
static int sq_busy, sq_started, sq_err;
static int sq_ids[SQ_THREADS];
static int sq_n = 0; /* senders in use: DUNE_NL_SENDERS (1..SQ_THREADS), default SQ_THREADS */

static void *sender_main(void *arg) {
  int q = *(int *)arg;
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  for (;;) {
    pthread_mutex_lock(&sq_mu);
    while (sq_head[q] == NULL) pthread_cond_wait(&sq_work[q], &sq_mu);
    struct send_job *j = sq_head[q];
    sq_head[q] = j->next;
    if (sq_head[q] == NULL) sq_tail[q] = NULL;
    sq_busy++;
    pthread_mutex_unlock(&sq_mu);
    int e = 0;
    for (uint32_t k = 0; k < (j->fd < 0 ? j->nseg : 1); k++) {
      int fd = j->fd < 0 ? j->fds[k] : j->fd;
      size_t from = j->fd < 0 && k > 0 ? j->ends[k - 1] : 0;
      size_t to = j->fd < 0 ? j->ends[k] : j->len;
      ssize_t n;
      do {
        n = sendto(fd, j->payload + from, to - from, 0, (struct sockaddr *)&sa, sizeof sa);
      } while (n < 0 && errno == EINTR);
      if (n < 0 && e == 0) e = errno;
    }
    pthread_mutex_lock(&sq_mu);
    if (e != 0 && sq_err == 0) sq_err = e;
    sq_bytes -= j->len;
    sq_busy--;
    pthread_cond_broadcast(&sq_done);
    pthread_mutex_unlock(&sq_mu);
    free(j);
  }
  return NULL;
}

static int sq_empty(void) {
  for (int q = 0; q < SQ_THREADS; q++)
    if (sq_head[q] != NULL) return 0;
  return sq_busy == 0;
}

/* The most senders allowed: DUNE_NL_SENDERS when it is 1..SQ_THREADS, else SQ_THREADS. */
static int sq_most(void) {
  const char *v = getenv("DUNE_NL_SENDERS");
  int n = v ? atoi(v) : 0;
  return n >= 1 && n <= SQ_THREADS ? n : SQ_THREADS;
}

/* Hands a job to the senders (starting them on first use); the queue is fd % senders, or 0 for a segmented job. */
static napi_value sq_submit(napi_env env, struct send_job *j) {
  pthread_mutex_lock(&sq_mu);
  if (sq_n == 0) sq_n = sq_most();
  while (sq_started < sq_n) {
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    sq_ids[sq_started] = sq_started;
    int e = pthread_create(&t, &at, sender_main, &sq_ids[sq_started]);
    pthread_attr_destroy(&at);
    if (e != 0) {
      pthread_mutex_unlock(&sq_mu);
      free(j);
      return throw_errno(env, e, "pthread_create", "netlink sender");
    }
    sq_started++;
  }
  while (sq_bytes > SQ_MAX_BYTES) pthread_cond_wait(&sq_done, &sq_mu);
  int q = j->fd < 0 ? 0 : j->fd % sq_n;
  if (sq_tail[q]) sq_tail[q]->next = j;
  else sq_head[q] = j;
  sq_tail[q] = j;
  sq_bytes += j->len;
  pthread_cond_signal(&sq_work[q]);
  pthread_mutex_unlock(&sq_mu);
  return NULL;
}

/* nlSendAsync(fd: number, buf: Buffer): undefined */
static napi_value NlSendAsync(napi_env env, napi_callback_info info) {
  int32_t fd;
  void *data;
  size_t len;
  if (get_fd_buffer(env, info, "nlSendAsync: expected a Buffer", &fd, &data, &len) < 0) return NULL;
  struct send_job *j = malloc(sizeof *j + len);
  if (!j) return throw_errno(env, ENOMEM, "malloc", "");
  j->next = NULL;
  j->fd = fd;
  j->len = len;
  j->nseg = 0;
  j->fds = NULL;
  j->ends = NULL;
  j->payload = j->data;
  memcpy(j->data, data, len);
  return sq_submit(env, j);
}

/*
 * nlSendSeqAsync(fds: Int32Array, buf: Buffer, ends: Int32Array): undefined — segment k of buf
 * (ends[k-1] .. ends[k]) sent to fds[k], one sendto each, all by one sender in exactly this
 * order (across sockets, which nlSendAsync does not keep). The caller waits (nlSendWait) before
 * it queues anything else for these sockets.
 */
static napi_value NlSendSeqAsync(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *fdata = NULL, *edata = NULL, *data = NULL;
  size_t nfd = 0, nend = 0, len = 0;
  bool ta1 = false, ta2 = false;
  napi_typedarray_type t1 = napi_uint8_array, t2 = napi_uint8_array;
  if (argc >= 3) {
    napi_is_typedarray(env, argv[0], &ta1);
    napi_is_typedarray(env, argv[2], &ta2);
  }
  if (ta1) napi_get_typedarray_info(env, argv[0], &t1, &nfd, &fdata, NULL, NULL);
  if (ta2) napi_get_typedarray_info(env, argv[2], &t2, &nend, &edata, NULL, NULL);
  if (!ta1 || !ta2 || t1 != napi_int32_array || t2 != napi_int32_array || nfd != nend || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "nlSendSeqAsync: expected (Int32Array fds, Buffer, Int32Array ends) with one end per fd");
    return NULL;
  }
  const int32_t *ends = edata;
  for (size_t k = 0; k < nend; k++) {
    if (ends[k] < (k ? ends[k - 1] : 0) || (size_t)ends[k] > len) {
      napi_throw_range_error(env, "ERANGE", "nlSendSeqAsync: ends must rise within the buffer");
      return NULL;
    }
  }
  if (nfd == 0) return NULL;
  size_t meta = nfd * (sizeof(int32_t) + sizeof(uint32_t));
  struct send_job *j = malloc(sizeof *j + meta + len);
  if (!j) return throw_errno(env, ENOMEM, "malloc", "");
  j->next = NULL;
  j->fd = -1;
  j->len = len;
  j->nseg = (uint32_t)nfd;
  j->fds = (int32_t *)j->data;
  j->ends = (uint32_t *)(j->data + nfd * sizeof(int32_t));
  j->payload = j->data + meta;
  memcpy(j->payload, data, len);
  memcpy(j->fds, fdata, nfd * sizeof(int32_t));
  memcpy(j->ends, edata, nfd * sizeof(uint32_t));
  return sq_submit(env, j);
}

/*
 * nlSetSenders(n: number): undefined — how many senders take batches from now on (1..2;
 * DUNE_NL_SENDERS, when set, is the most): two where the kernel runs requests of different
 * namespaces side by side (IPv6 routes), one where each takes RTNL anyway (links, addresses),
 * so that a second sender does not spin on the lock beside the first. Waits for the queue to
 * empty first: a socket's batches go to queue fd % senders, so the count changes only between
 * batches.
 */
static napi_value NlSetSenders(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t n = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || get_int(env, argv[0], &n) < 0) return NULL;
  pthread_mutex_lock(&sq_mu);
  while (!sq_empty()) pthread_cond_wait(&sq_done, &sq_mu);
  int most = sq_most();
  sq_n = n < 1 ? 1 : n > most ? most : n;
  pthread_mutex_unlock(&sq_mu);
  return NULL;
}

/* nlSendWait(): undefined — every queued batch sent; throws the first send error since the last wait. */
static napi_value NlSendWait(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_mutex_lock(&sq_mu);
  while (!sq_empty()) pthread_cond_wait(&sq_done, &sq_mu);
  int e = sq_err;
  sq_err = 0;
  pthread_mutex_unlock(&sq_mu);
  if (e != 0) return throw_errno(env, e, "sendto(netlink)", "(background sender)");
  return NULL;
}

/*
 * nlRecv(fd: number, timeoutMs: number): Buffer | null
 * Waits up to timeoutMs for the first datagram, then drains whatever else is already queued
 * (up to RECV_MAX_TOTAL bytes) without waiting, and returns the datagrams concatenated:
 * netlink messages are self-delimiting and 4-byte aligned, so the caller parses them as one
 * stream, and a burst of thousands of ACKs costs one crossing into C instead of thousands.
 * null on timeout.
 */
static napi_value NlRecv(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, timeout;
  if (argc < 2 || get_int(env, argv[0], &fd) < 0 || get_int(env, argv[1], &timeout) < 0) return NULL;

  struct pollfd p = {.fd = fd, .events = POLLIN};
  int pr;
  do {
    pr = poll(&p, 1, timeout);
  } while (pr < 0 && errno == EINTR);
  if (pr < 0) return throw_errno(env, errno, "poll", "");
  if (pr == 0) {
    napi_value nul;
    napi_get_null(env, &nul);
    return nul;
  }

  size_t cap = RECV_CHUNK, used = 0;
  char *buf = malloc(cap);
  if (!buf) return throw_errno(env, ENOMEM, "malloc", "");
  for (;;) {
    /* Peek the size first so a datagram larger than what is left is never truncated. */
    ssize_t want;
    do {
      want = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    } while (want < 0 && errno == EINTR);
    if (want < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      int e = errno;
      free(buf);
      return throw_errno(env, e, "recv(netlink)", "");
    }
    if (used > 0 && used + (size_t)want > RECV_MAX_TOTAL) break;
    if (used + (size_t)want > cap) {
      while (used + (size_t)want > cap) cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        return throw_errno(env, ENOMEM, "realloc", "");
      }
      buf = nb;
    }
    ssize_t n;
    do {
      n = recv(fd, buf + used, cap - used, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      int e = errno;
      free(buf);
      return throw_errno(env, e, "recv(netlink)", "");
    }
    used += (size_t)n;
    if (n == 0) break;
  }
  napi_value out;
  void *dst;
  if (napi_create_buffer_copy(env, used, buf, &dst, &out) != napi_ok) {
    free(buf);
    napi_throw_error(env, "ENOMEM", "nlRecv: cannot allocate a Buffer");
    return NULL;
  }
  free(buf);
  return out;
}

/* nlClose(fd: number): void  (also fine for any fd) */
static napi_value NlClose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || get_int(env, argv[0], &fd) < 0) return NULL;
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, errno, "close", "");
  return undefined(env);
}

/* peerPid(fd: number): number -- the pid of the process that connected a unix socket. */
static napi_value PeerPid(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || get_int(env, argv[0], &fd) < 0) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return throw_errno(env, errno, "getsockopt(SO_PEERCRED)", "");
  napi_value out;
  CHECK(napi_create_int32(env, cred.pid, &out));
  return out;
}

/* openInNs(nsPath: string, path: string, flags: number): number */
static napi_value OpenInNs(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *ns_path = NULL, *path = NULL;
  int32_t flags;
  if (argc < 3 || get_string(env, argv[0], &ns_path, 1) < 0 || get_string(env, argv[1], &path, 0) < 0 ||
      get_int(env, argv[2], &flags) < 0) {
    free(ns_path);
    free(path);
    return NULL;
  }
  int back = -1;
  const char *failed = NULL;
  napi_value ret = NULL;
  if (ns_path && enter_ns(ns_path, &back, &failed) < 0) {
    ret = throw_errno(env, errno, failed, ns_path);
    goto out;
  }
  int fd = (flags & O_CREAT) ? open(path, flags | O_CLOEXEC, 0644) : proc_open(&main_proc, path, flags | O_CLOEXEC);
  int e = errno;
  if (ns_path) {
    proc_next_ns(&main_proc);
    leave_ns(back);
  }
  if (fd < 0) {
    ret = throw_errno(env, e, "open", path);
    goto out;
  }
  napi_create_int32(env, fd, &ret);
out:
  free(ns_path);
  free(path);
  return ret;
}

/* ---------- namespaces ---------- */

static int dir_is_empty(const char *path) {
  DIR *d = opendir(path);
  if (!d) return 0;
  struct dirent *e;
  int empty = 1;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      empty = 0;
      break;
    }
  }
  closedir(d);
  return empty;
}

/*
 * Where /run is not a tmpfs (some VMs keep it on the root disk), creating each namespace
 * file costs ~0.8 ms of file-system journaling: more than creating the namespace itself.
 * Every systemd host has /run on tmpfs; give /run/netns one when it is on something else
 * and empty (so nothing is hidden). Set DUNE_NETNS_NO_TMPFS=1 to keep it as it is.
 */
static void maybe_tmpfs(void) {
  struct statfs fs;
  const char *off = getenv("DUNE_NETNS_NO_TMPFS");
  if (off && *off && strcmp(off, "0")) return;
  if (statfs(NETNS_RUN_DIR, &fs) < 0 || fs.f_type == 0x01021994 /* TMPFS_MAGIC */) return;
  if (!dir_is_empty(NETNS_RUN_DIR)) return;
  mount("tmpfs", NETNS_RUN_DIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755");
}

/* Makes /run/netns a shared mount point, as iproute2's netns_add does (under the same flock),
 * so unmounting a namespace file propagates to every mount namespace and frees it sooner. */
static int prepare_run_dir(const char **failed) {
  mkdir("/run", 0755);
  if (mkdir(NETNS_RUN_DIR, S_IRWXU | S_IRGRP | S_IXGRP | S_IROTH | S_IXOTH) < 0 && errno != EEXIST) {
    *failed = "mkdir(" NETNS_RUN_DIR ")";
    return -1;
  }
  int lock = open(NETNS_RUN_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock < 0) { *failed = "open(" NETNS_RUN_DIR ")"; return -1; }
  if (flock(lock, LOCK_EX) < 0) {
    int e = errno;
    close(lock);
    errno = e;
    *failed = "flock(" NETNS_RUN_DIR ")";
    return -1;
  }
  int made = 0, rc = 0;
  maybe_tmpfs();
  while (mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL)) {
    if (errno != EINVAL || made) { *failed = "mount --make-shared " NETNS_RUN_DIR; rc = -1; break; }
    if (mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC, NULL)) {
      *failed = "mount --bind " NETNS_RUN_DIR;
      rc = -1;
      break;
    }
    made = 1;
  }
  int e = errno;
  flock(lock, LOCK_UN);
  close(lock);
  errno = e;
  return rc;
}

struct ns_job {
  char **names;
  int count;
  int stride;
  int first;
  int protocol; /* < 0: no netlink socket */
  int32_t *results; /* per name: errno, nl fd, ns fd */
  char **init_paths; /* /proc/sys files written inside each new namespace */
  char **init_values;
  uint32_t n_init;
  char **aliases; /* per name, lo's alias, set before the namespace gets its name; or NULL */
  const uint8_t *lo_up; /* per name, nonzero: lo is brought up in the same message; or NULL */
};

/*
 * Sets the alias (IFLA_IFALIAS) of lo, ifindex 1, in the namespace this thread is in, and
 * brings lo up when `up` (one message: lo's state no longer costs a round trip from Node's
 * thread per namespace). The alias is the mark teardown trusts, so it must be there before
 * /run/netns/<name> points at the namespace: a kill -9 at any moment then leaves either an
 * empty file (not a namespace yet, removed as stale) or a marked namespace, never an unmarked
 * one with the lab's name. `fd` is a routing socket inside the namespace, or -1 (one is opened
 * and closed here).
 */
static int set_lo(int fd, const char *alias, int up) {
  struct {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
    char attrs[RTA_SPACE(256)];
  } req;
  size_t len = alias ? strlen(alias) : 0;
  if (len > 255) return ENAMETOOLONG;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_type = RTM_NEWLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = 1;
  if (up) {
    req.ifi.ifi_flags = IFF_UP;
    req.ifi.ifi_change = IFF_UP;
  }
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.ifi);
  if (len > 0) {
    struct rtattr *rta = (struct rtattr *)req.attrs;
    rta->rta_type = IFLA_IFALIAS;
    rta->rta_len = RTA_LENGTH(len);
    memcpy(RTA_DATA(rta), alias, len);
    req.nh.nlmsg_len += RTA_ALIGN(rta->rta_len);
  }
  int own = fd < 0;
  if (own) fd = nl_socket(NETLINK_ROUTE);
  if (fd < 0) return errno;
  int err = 0;
  if (send(fd, &req, req.nh.nlmsg_len, 0) < 0) {
    err = errno;
  } else {
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      err = errno;
    } else if ((size_t)n >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
      struct nlmsghdr *h = (struct nlmsghdr *)buf;
      if (h->nlmsg_type == NLMSG_ERROR) err = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
    }
  }
  if (own) close(fd);
  return err;
}

static int create_one(const char *name, int protocol, int32_t *res, const struct ns_job *job, struct proc_handle *proc) {
  char path[PATH_MAX];
  res[0] = 0;
  res[1] = -1;
  res[2] = -1;
  if (snprintf(path, sizeof path, NETNS_RUN_DIR "/%s", name) >= (int)sizeof path) return ENAMETOOLONG;
  int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) return errno;
  close(fd);
  if (unshare(CLONE_NEWNET) < 0) {
    int e = errno;
    unlink(path);
    return e;
  }
  char self[64];
  snprintf(self, sizeof self, "/proc/self/task/%ld/ns/net", (long)syscall(SYS_gettid));
  size_t idx = (size_t)(res - job->results) / 3;
  const char *alias = job->aliases ? job->aliases[idx] : NULL;
  int up = job->lo_up ? job->lo_up[idx] != 0 : 0;
  /* The caller's routing socket, opened while the thread is inside (saves a setns round trip
   * later), also carries lo's message. */
  int nl = protocol >= 0 ? nl_socket(protocol) : -1;
  if ((alias && alias[0]) || up) {
    int e = set_lo(protocol == NETLINK_ROUTE ? nl : -1, alias, up);
    if (e) {
      if (nl >= 0) close(nl);
      unlink(path);
      return e;
    }
  }
  if (mount(self, path, "none", MS_BIND, NULL) < 0) {
    int e = errno;
    if (nl >= 0) close(nl);
    unlink(path);
    return e;
  }
  for (uint32_t k = 0; k < job->n_init; k++) {
    /* Best effort: a key this kernel lacks is the caller's to check, not a failed namespace. */
    int sfd = proc_open(proc, job->init_paths[k], O_WRONLY | O_CLOEXEC);
    if (sfd >= 0) {
      ssize_t wr = write(sfd, job->init_values[k], strlen(job->init_values[k]));
      (void)wr;
      close(sfd);
    }
  }
  if (protocol >= 0) {
    /* And an fd of the namespace itself (IFLA_NET_NS_FD). */
    res[1] = nl;
    res[2] = open(self, O_RDONLY | O_CLOEXEC);
  }
  return 0;
}

static void *create_worker(void *arg) {
  struct ns_job *job = arg;
  struct proc_handle proc = {-1, 0};
  for (int i = job->first; i < job->count; i += job->stride) {
    int32_t *res = job->results + 3 * i;
    int e = create_one(job->names[i], job->protocol, res, job, &proc);
    if (job->n_init > 0) proc_next_ns(&proc);
    res[0] = e;
  }
  proc_close(&proc);
  return NULL;
}

static void free_names(char **names, uint32_t n) {
  if (!names) return;
  for (uint32_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

/* An array of strings, any content (aliases); with allow_null, nulls too (kept as NULL). */
static int read_strings(napi_env env, napi_value arr, char ***out, uint32_t *n, int allow_null) {
  bool is_array = false;
  *out = NULL;
  *n = 0;
  napi_is_array(env, arr, &is_array);
  if (!is_array) {
    napi_throw_type_error(env, "EINVAL", "dune_native: expected an array of strings");
    return -1;
  }
  napi_get_array_length(env, arr, n);
  char **v = calloc(*n ? *n : 1, sizeof(char *));
  if (!v) return -1;
  for (uint32_t i = 0; i < *n; i++) {
    napi_value e;
    napi_get_element(env, arr, i, &e);
    if (get_string(env, e, &v[i], allow_null) < 0) {
      free_names(v, *n);
      return -1;
    }
  }
  *out = v;
  return 0;
}

static int read_names_any(napi_env env, napi_value arr, char ***out, uint32_t *n) {
  return read_strings(env, arr, out, n, 0);
}

static int read_names(napi_env env, napi_value arr, char ***out, uint32_t *n) {
  bool is_array = false;
  *out = NULL;
  *n = 0;
  napi_is_array(env, arr, &is_array);
  if (!is_array) {
    napi_throw_type_error(env, "EINVAL", "dune_native: expected an array of names");
    return -1;
  }
  napi_get_array_length(env, arr, n);
  char **names = calloc(*n ? *n : 1, sizeof(char *));
  if (!names) return -1;
  for (uint32_t i = 0; i < *n; i++) {
    napi_value v;
    napi_get_element(env, arr, i, &v);
    if (get_string(env, v, &names[i], 0) < 0) {
      free_names(names, *n);
      return -1;
    }
    if (strchr(names[i], '/') || !strcmp(names[i], ".") || !strcmp(names[i], "..") || !names[i][0]) {
      free_names(names, *n);
      napi_throw_error(env, "EINVAL", "dune_native: a namespace name must be a single path component");
      return -1;
    }
  }
  *out = names;
  return 0;
}

/*
 * netnsCreateMany(names: string[], threads: number, protocol: number, init?: [path, value][],
 *                 loAliases?: string[], loUp?: Uint8Array): Int32Array
 * Creates each /run/netns/<name> (O_EXCL: an existing one is EEXIST, never reused). Returns
 * 3 ints per name: errno (0 = created), then, when protocol >= 0, a netlink socket opened
 * inside the new namespace and an fd of the namespace (both -1 otherwise). The work is spread
 * over `threads` pthreads: namespace creation is mostly kernel time that scales over cores.
 * `init` files (under /proc/sys) are written inside each new namespace before anything else
 * is created in it, e.g. net.ipv6.conf.default.* that new interfaces inherit. lo gets its
 * alias (`loAliases`) and, where `loUp` says so, comes up before the namespace is named.
 */
/*
 * Ends an async job's promise: resolved with a copy of its n int32 results as an Int32Array,
 * or rejected ("<what>: the work did not complete") when the work or the copy failed.
 */
static void settle_int32(napi_env env, napi_status status, napi_deferred deferred, const int32_t *res, size_t n, const char *what) {
  napi_value ab, out;
  void *buf;
  if (status == napi_ok && napi_create_arraybuffer(env, n * sizeof(int32_t), &buf, &ab) == napi_ok &&
      napi_create_typedarray(env, napi_int32_array, n, ab, 0, &out) == napi_ok) {
    if (n) memcpy(buf, res, n * sizeof(int32_t));
    napi_resolve_deferred(env, deferred, out);
  } else {
    char text[128];
    snprintf(text, sizeof text, "%s: the work did not complete", what);
    napi_value err, msg;
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, deferred, err);
  }
}

/*
 * Starts an async job on libuv's pool and returns its promise; NULL when it could not be
 * started (nothing runs: the caller frees the job and throws).
 */
static napi_value start_job(napi_env env, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete, void *data,
                            napi_async_work *work, napi_deferred *deferred) {
  napi_value promise, id;
  if (napi_create_promise(env, deferred, &promise) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &id) == napi_ok && napi_create_async_work(env, NULL, id, execute, complete, data, work) == napi_ok) {
    if (napi_queue_async_work(env, *work) == napi_ok) return promise;
    napi_delete_async_work(env, *work);
  }
  napi_value err, msg;
  napi_create_string_utf8(env, "the work could not be started", NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &err);
  napi_reject_deferred(env, *deferred, err);
  return NULL;
}

/* netnsCreateMany's arguments, read and owned (the async form uses them on another thread). */
struct create_args {
  char **names;
  uint32_t n;
  int32_t threads;
  int32_t protocol;
  char **init_paths;
  char **init_values;
  uint32_t n_init;
  char **aliases;
  uint8_t *lo_up;
};

static void free_create_args(struct create_args *a) {
  free_names(a->names, a->n);
  free_names(a->init_paths, a->n_init);
  free_names(a->init_values, a->n_init);
  free_names(a->aliases, a->n);
  free(a->lo_up);
  memset(a, 0, sizeof *a);
}

/* Reads and checks the arguments, prepares /run/netns; -1 with a JS exception pending. */
static int read_create_args(napi_env env, napi_callback_info info, struct create_args *a) {
  size_t argc = 6;
  napi_value argv[6];
  memset(a, 0, sizeof *a);
  a->threads = 1;
  a->protocol = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  if (argc < 3) {
    napi_throw_type_error(env, "EINVAL", "dune_native: expected (names, threads, protocol, init?, loAliases?, loUp?)");
    return -1;
  }
  if (read_names(env, argv[0], &a->names, &a->n) < 0) return -1;
  if (get_int(env, argv[1], &a->threads) < 0 || get_int(env, argv[2], &a->protocol) < 0) goto fail;
  napi_valuetype t4 = napi_undefined;
  if (argc >= 4) napi_typeof(env, argv[3], &t4);
  if (t4 == napi_object) {
    bool is_array = false;
    napi_is_array(env, argv[3], &is_array);
    if (is_array) {
      napi_get_array_length(env, argv[3], &a->n_init);
      a->init_paths = calloc(a->n_init ? a->n_init : 1, sizeof(char *));
      a->init_values = calloc(a->n_init ? a->n_init : 1, sizeof(char *));
      if (!a->init_paths || !a->init_values) goto fail;
      for (uint32_t k = 0; k < a->n_init; k++) {
        napi_value pair, pv, vv;
        napi_get_element(env, argv[3], k, &pair);
        napi_get_element(env, pair, 0, &pv);
        napi_get_element(env, pair, 1, &vv);
        if (get_string(env, pv, &a->init_paths[k], 0) < 0 || get_string(env, vv, &a->init_values[k], 0) < 0) goto fail;
      }
    }
  }
  /* Optional: one alias per name for lo, written before the namespace gets its name. */
  napi_valuetype t5 = napi_undefined;
  if (argc >= 5) napi_typeof(env, argv[4], &t5);
  if (t5 == napi_object) {
    uint32_t na = 0;
    if (read_names_any(env, argv[4], &a->aliases, &na) < 0) goto fail;
    if (na != a->n) {
      free_names(a->aliases, na);
      a->aliases = NULL;
      napi_throw_error(env, "EINVAL", "dune_native: netnsCreateMany needs one alias per name");
      goto fail;
    }
  }
  /* Optional: a Uint8Array, one byte per name, nonzero where lo comes up at creation (copied:
   * the async form reads it on another thread). */
  if (argc >= 6) {
    bool is_ta = false;
    napi_is_typedarray(env, argv[5], &is_ta);
    napi_typedarray_type tt;
    size_t len = 0;
    void *ud = NULL;
    if (is_ta) napi_get_typedarray_info(env, argv[5], &tt, &len, &ud, NULL, NULL);
    if (!is_ta || tt != napi_uint8_array || len != a->n) {
      napi_throw_error(env, "EINVAL", "dune_native: netnsCreateMany's loUp is a Uint8Array with one byte per name");
      goto fail;
    }
    a->lo_up = malloc(len ? len : 1);
    if (!a->lo_up) goto fail;
    if (len) memcpy(a->lo_up, ud, len);
  }
  {
    const char *failed = NULL;
    if (prepare_run_dir(&failed) < 0) {
      throw_errno(env, errno, failed, "");
      goto fail;
    }
  }
  if (a->threads < 1) a->threads = 1;
  if (a->threads > 64) a->threads = 64;
  if ((uint32_t)a->threads > a->n) a->threads = a->n ? (int)a->n : 1;
  return 0;
fail:
  free_create_args(a);
  return -1;
}

/* Creates the namespaces on the args' threads, 3 ints per name into results. */
static void run_create(const struct create_args *a, int32_t *results) {
  struct ns_job jobs[64];
  pthread_t tids[64];
  for (int t = 0; t < a->threads; t++) {
    jobs[t] = (struct ns_job){a->names, (int)a->n, a->threads, t, a->protocol, results, a->init_paths, a->init_values, a->n_init, a->aliases, a->lo_up};
    if (pthread_create(&tids[t], NULL, create_worker, &jobs[t]) != 0) {
      /* Could not start a thread: do that share on this thread... except that would
       * unshare Node's own thread. Mark its names as failed instead. */
      for (uint32_t i = (uint32_t)t; i < a->n; i += (uint32_t)a->threads) {
        results[3 * i] = EAGAIN;
        results[3 * i + 1] = -1;
        results[3 * i + 2] = -1;
      }
      tids[t] = 0;
    }
  }
  for (int t = 0; t < a->threads; t++)
    if (tids[t]) pthread_join(tids[t], NULL);
}

static napi_value NetnsCreateMany(napi_env env, napi_callback_info info) {
  struct create_args a;
  if (read_create_args(env, info, &a) < 0) return NULL;
  napi_value ab, out = NULL;
  void *data;
  if (napi_create_arraybuffer(env, (size_t)a.n * 3 * sizeof(int32_t), &data, &ab) == napi_ok &&
      napi_create_typedarray(env, napi_int32_array, (size_t)a.n * 3, ab, 0, &out) == napi_ok) {
    run_create(&a, data);
  } else {
    napi_throw_error(env, "ENOMEM", "netnsCreateMany: cannot allocate the result");
    out = NULL;
  }
  free_create_args(&a);
  return out;
}

/*
 * netnsCreateManyAsync(same arguments): Promise<Int32Array>. netnsCreateMany while JavaScript
 * goes on: the threads are started and joined from a thread of libuv's pool. `up` of a new
 * lab creates its namespaces this way while it stages the plan and probes the kernel.
 */
struct create_async {
  napi_async_work work;
  napi_deferred deferred;
  struct create_args a;
  int32_t *res;
};

static void create_execute(napi_env env, void *data) {
  (void)env;
  struct create_async *j = data;
  run_create(&j->a, j->res);
}

static void create_complete(napi_env env, napi_status status, void *data) {
  struct create_async *j = data;
  settle_int32(env, status, j->deferred, j->res, (size_t)j->a.n * 3, "netnsCreateManyAsync");
  napi_delete_async_work(env, j->work);
  free_create_args(&j->a);
  free(j->res);
  free(j);
}

static napi_value NetnsCreateManyAsync(napi_env env, napi_callback_info info) {
  struct create_async *j = calloc(1, sizeof *j);
  if (!j) return throw_errno(env, ENOMEM, "malloc", "");
  if (read_create_args(env, info, &j->a) < 0) {
    free(j);
    return NULL;
  }
  j->res = calloc((size_t)j->a.n * 3 + 1, sizeof(int32_t));
  napi_value promise = j->res ? start_job(env, "dune:netnsCreateManyAsync", create_execute, create_complete, j, &j->work, &j->deferred) : NULL;
  if (!promise) {
    free_create_args(&j->a);
    free(j->res);
    free(j);
    return throw_errno(env, ENOMEM, "netnsCreateManyAsync", "");
  }
  return promise;
}

/*
 * (names: string[], threads?: number): the names, and the number of threads to spread them
 * over (the default when absent), kept within 1..64 and no more than there are names.
 * -1 with a JS exception pending when an argument is wrong.
 */
static int names_and_threads(napi_env env, napi_callback_info info, char ***names, uint32_t *n, int32_t *threads) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, "EINVAL", "dune_native: expected (names, threads?)");
    return -1;
  }
  if (read_names(env, argv[0], names, n) < 0) return -1;
  napi_valuetype t1 = napi_undefined;
  if (argc >= 2) napi_typeof(env, argv[1], &t1);
  if (t1 == napi_number && get_int(env, argv[1], threads) < 0) {
    free_names(*names, *n);
    return -1;
  }
  if (*threads < 1) *threads = 1;
  if (*threads > 64) *threads = 64;
  if ((uint32_t)*threads > *n) *threads = *n ? (int)*n : 1;
  return 0;
}

/*
 * netnsDeleteMany(names: string[], threads?: number): Int32Array of errno per name (0 =
 * deleted or absent). umount2(MNT_DETACH) + unlink, like `ip netns delete`; the kernel frees
 * the namespace (and its interfaces) asynchronously once nothing else holds it.
 *
 * Each umount ends waiting for an RCU grace period (namespace_unlock: synchronize_rcu_expedited,
 * after the mount lock is released), 40 µs to 500 µs each depending on what else the kernel
 * does: a thousand of them one after the other took 0.04 to 0.5 s. Threads that wait at once
 * share grace periods, and waiting needs no CPU, so the names are spread over `threads`
 * pthreads (default 16) whatever the number of cores.
 */
struct del_job {
  char **names;
  uint32_t n;
  int32_t *res;
  uint32_t next; /* the next name to take (atomic) */
};

static void *delete_worker(void *arg) {
  struct del_job *j = arg;
  char path[PATH_MAX];
  for (;;) {
    uint32_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
    if (i >= j->n) break;
    j->res[i] = 0;
    if (snprintf(path, sizeof path, NETNS_RUN_DIR "/%s", j->names[i]) >= (int)sizeof path) {
      j->res[i] = ENAMETOOLONG;
      continue;
    }
    if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
      j->res[i] = errno;
      continue;
    }
    if (unlink(path) < 0 && errno != ENOENT) j->res[i] = errno;
  }
  return NULL;
}

static napi_value NetnsDeleteMany(napi_env env, napi_callback_info info) {
  struct del_job job = {NULL, 0, NULL, 0};
  int32_t threads = 16;
  if (names_and_threads(env, info, &job.names, &job.n, &threads) < 0) return NULL;
  napi_value ab, out;
  void *data;
  CHECK(napi_create_arraybuffer(env, (size_t)job.n * sizeof(int32_t), &data, &ab));
  CHECK(napi_create_typedarray(env, napi_int32_array, job.n, ab, 0, &out));
  job.res = data;
  pthread_t tids[64];
  int started = 0;
  /* Node's own thread takes part too (umount and unlink do not change its namespaces). */
  for (int t = 1; t < threads; t++)
    if (pthread_create(&tids[started], NULL, delete_worker, &job) == 0) started++;
  delete_worker(&job);
  for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
  free_names(job.names, job.n);
  return out;
}

/*
 * loAliasesMany(names: string[], threads?: number): { codes: Int32Array, aliases: (string | null)[] }
 *
 * lo's alias (IFLA_IFALIAS of ifindex 1) in each /run/netns/<name>: the mark teardown checks
 * before deleting a namespace. Each of `threads` pthreads (default 4) enters the namespaces
 * it takes with setns, asks with one RTM_GETLINK on a plain socket, and reads the answer; the
 * threads then exit, so Node's thread never leaves its namespace. Per name, codes holds a
 * pair (kind, errno): kind 0 read (aliases[i] the alias, null when none), 1 stale (a plain
 * file: its mount is gone), 2 cannot be entered (errno), 3 the query failed (errno).
 */
#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
struct alias_job {
  char **names;
  uint32_t n;
  int32_t *codes;
  char **aliases;
  uint32_t next;
};

static void read_lo_alias(const char *name, int32_t *code, char **alias) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, NETNS_RUN_DIR "/%s", name) >= (int)sizeof path) {
    code[0] = 2;
    code[1] = ENAMETOOLONG;
    return;
  }
  int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    code[0] = 2;
    code[1] = errno;
    return;
  }
  if (setns(nsfd, CLONE_NEWNET) < 0) {
    int e = errno;
    struct statfs sf;
    code[0] = fstatfs(nsfd, &sf) == 0 && sf.f_type != NSFS_MAGIC ? 1 : 2;
    code[1] = e;
    close(nsfd);
    return;
  }
  close(nsfd);
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    code[0] = 3;
    code[1] = errno;
    return;
  }
  struct {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = RTM_GETLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = 1;
  static __thread char buf[32768];
  code[0] = 3;
  code[1] = EPROTO;
  if (send(fd, &req, sizeof req, 0) < 0) {
    code[1] = errno;
    close(fd);
    return;
  }
  ssize_t n;
  do {
    n = recv(fd, buf, sizeof buf, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    code[1] = errno;
    close(fd);
    return;
  }
  for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      int e = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
      if (e != 0) code[1] = e;
      break;
    }
    if (h->nlmsg_type != RTM_NEWLINK) continue;
    struct ifinfomsg *ifi = NLMSG_DATA(h);
    int len = (int)IFLA_PAYLOAD(h);
    code[0] = 0;
    code[1] = 0;
    for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
      if (a->rta_type != IFLA_IFALIAS) continue;
      size_t l = RTA_PAYLOAD(a);
      const char *v = RTA_DATA(a);
      while (l > 0 && v[l - 1] == '\0') l--;
      *alias = strndup(v, l);
      break;
    }
    break;
  }
  close(fd);
}

static void *alias_worker(void *arg) {
  struct alias_job *j = arg;
  for (;;) {
    uint32_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
    if (i >= j->n) break;
    read_lo_alias(j->names[i], j->codes + 2 * i, &j->aliases[i]);
  }
  return NULL;
}

static napi_value LoAliasesMany(napi_env env, napi_callback_info info) {
  struct alias_job job = {NULL, 0, NULL, NULL, 0};
  int32_t threads = 4;
  if (names_and_threads(env, info, &job.names, &job.n, &threads) < 0) return NULL;
  napi_value ab, codes, aliases, out;
  void *data;
  CHECK(napi_create_arraybuffer(env, (size_t)job.n * 2 * sizeof(int32_t), &data, &ab));
  CHECK(napi_create_typedarray(env, napi_int32_array, (size_t)job.n * 2, ab, 0, &codes));
  job.codes = data;
  job.aliases = calloc(job.n ? job.n : 1, sizeof(char *));
  if (!job.aliases) {
    free_names(job.names, job.n);
    return throw_errno(env, ENOMEM, "malloc", "");
  }
  pthread_t tids[64];
  int started = 0;
  for (int t = 0; t < threads; t++)
    if (pthread_create(&tids[started], NULL, alias_worker, &job) == 0) started++;
  for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
  /* No thread at all: every name marked, none entered from Node's own thread. */
  if (started == 0)
    for (uint32_t i = 0; i < job.n; i++) {
      job.codes[2 * i] = 3;
      job.codes[2 * i + 1] = EAGAIN;
    }
  CHECK(napi_create_array_with_length(env, job.n, &aliases));
  for (uint32_t i = 0; i < job.n; i++) {
    napi_value v;
    if (job.aliases[i]) CHECK(napi_create_string_utf8(env, job.aliases[i], NAPI_AUTO_LENGTH, &v));
    else CHECK(napi_get_null(env, &v));
    CHECK(napi_set_element(env, aliases, i, v));
  }
  free_names(job.aliases, job.n);
  free_names(job.names, job.n);
  CHECK(napi_create_object(env, &out));
  CHECK(napi_set_named_property(env, out, "codes", codes));
  CHECK(napi_set_named_property(env, out, "aliases", aliases));
  return out;
}

/*
 * Writes values[i] to paths[i] in the namespace the thread is in: paths under `dir` opened
 * below one fd of it, those under /proc through the handle's procfs instance (see proc_open),
 * others by their full path. res gets a pair per path: (0, 0) written, (1, errno) open
 * failed, (2, errno) write failed.
 */
static void write_files(struct proc_handle *proc, const char *dir, char **paths, char **values, uint32_t np, int32_t *res) {
  size_t dlen = strlen(dir);
  int dfd = -1;
  for (uint32_t i = 0; i < np; i++) {
    const char *p = paths[i];
    int fd;
    if (dlen > 0 && strncmp(p, dir, dlen) == 0 && p[dlen] == '/') {
      if (dfd < 0) dfd = proc_open(proc, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      fd = dfd >= 0 ? openat(dfd, p + dlen + 1, O_WRONLY | O_CLOEXEC) : proc_open(proc, p, O_WRONLY | O_CLOEXEC);
    } else {
      fd = proc_open(proc, p, O_WRONLY | O_CLOEXEC);
    }
    if (fd < 0) {
      res[2 * i] = 1;
      res[2 * i + 1] = errno;
      continue;
    }
    size_t len = strlen(values[i]);
    ssize_t w;
    do {
      w = write(fd, values[i], len);
    } while (w < 0 && errno == EINTR);
    res[2 * i] = w < 0 ? 2 : 0;
    res[2 * i + 1] = w < 0 ? errno : 0;
    close(fd);
  }
  if (dfd >= 0) close(dfd);
}

/*
 * writeInNsMany(nsPaths: (string | null)[], counts: Int32Array, dir: string, paths: string[],
 *               values: string[], threads: number): Int32Array
 *
 * Writes values[i] to paths[i], nsPaths[k] getting the next counts[k] of them (null: the
 * namespace the process is in): a node's sysctls, each namespace entered once for all of its
 * files (a setns there and back per file cost more than the write). Paths under `dir` are
 * opened below one fd of it, opened once; paths under /proc through the thread's own procfs
 * instance (see proc_open: every namespace's /proc/sys/net has the same name under the same
 * parent, so each lookup by full path walks a hash chain as long as the number of
 * namespaces); others by their full path. The namespaces are spread over `threads` pthreads,
 * each entering them in turn with setns and exiting after, so Node's thread never leaves its
 * namespace; a namespace's files are written in their order. A sysctl write is mostly the
 * kernel's time (1,000 nodes' 7,000 took ~170 ms on Node's thread alone). The result holds a
 * pair per path: (0, 0) written, (1, errno) open failed, (2, errno) write failed, (3, errno)
 * its namespace could not be entered.
 */
struct write_job {
  char **ns_paths;
  uint32_t nns;
  const int32_t *first; /* per namespace: index of its first path */
  const int32_t *counts;
  const char *dir;
  char **paths;
  char **values;
  int32_t *res;
  uint32_t next; /* the next namespace to take (atomic) */
};

static void *write_worker(void *arg) {
  struct write_job *j = arg;
  struct proc_handle proc = {-1, 0};
  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  for (;;) {
    uint32_t k = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
    if (k >= j->nns) break;
    int32_t f = j->first[k], c = j->counts[k];
    int target = j->ns_paths[k] ? open(j->ns_paths[k], O_RDONLY | O_CLOEXEC) : home;
    int e = target < 0 ? (j->ns_paths[k] ? errno : EBADF) : 0;
    if (!e && setns(target, CLONE_NEWNET) < 0) e = errno;
    if (target >= 0 && target != home) close(target);
    if (e) {
      for (int32_t i = f; i < f + c; i++) {
        j->res[2 * i] = 3;
        j->res[2 * i + 1] = e;
      }
      continue;
    }
    write_files(&proc, j->dir, j->paths + f, j->values + f, (uint32_t)c, j->res + 2 * f);
    proc_next_ns(&proc);
  }
  proc_close(&proc);
  if (home >= 0) close(home);
  return NULL;
}

static napi_value WriteInNsMany(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct write_job job;
  memset(&job, 0, sizeof job);
  char *dir = NULL;
  uint32_t np = 0, nv = 0;
  int32_t threads = 2;
  int32_t *first = NULL;
  napi_value ret = NULL, ab;
  void *data = NULL;
  bool is_ta = false;
  napi_typedarray_type tt;
  size_t ncounts = 0;
  void *cdata = NULL;
  if (argc < 6 || read_strings(env, argv[0], &job.ns_paths, &job.nns, 1) < 0) return NULL;
  napi_is_typedarray(env, argv[1], &is_ta);
  if (is_ta) napi_get_typedarray_info(env, argv[1], &tt, &ncounts, &cdata, NULL, NULL);
  if (!is_ta || tt != napi_int32_array || ncounts != job.nns) {
    napi_throw_type_error(env, "EINVAL", "writeInNsMany: counts is an Int32Array with one count per namespace");
    goto out;
  }
  if (get_string(env, argv[2], &dir, 0) < 0 || read_names_any(env, argv[3], &job.paths, &np) < 0 ||
      read_names_any(env, argv[4], &job.values, &nv) < 0 || get_int(env, argv[5], &threads) < 0) goto out;
  job.counts = cdata;
  first = malloc((job.nns ? job.nns : 1) * sizeof(int32_t));
  if (!first) {
    napi_throw_error(env, "ENOMEM", "writeInNsMany: cannot allocate");
    goto out;
  }
  {
    int64_t total = 0;
    for (uint32_t k = 0; k < job.nns; k++) {
      first[k] = (int32_t)total;
      if (job.counts[k] < 0) {
        total = -1;
        break;
      }
      total += job.counts[k];
    }
    if (np != nv || total != (int64_t)np) {
      napi_throw_error(env, "EINVAL", "writeInNsMany: counts, paths and values disagree in length");
      goto out;
    }
  }
  job.first = first;
  job.dir = dir;
  if (napi_create_arraybuffer(env, (size_t)(np ? np : 1) * 2 * sizeof(int32_t), &data, &ab) != napi_ok) {
    napi_throw_error(env, "ENOMEM", "writeInNsMany: cannot allocate the result");
    goto out;
  }
  job.res = data;
  if (threads < 1) threads = 1;
  if (threads > 64) threads = 64;
  if ((uint32_t)threads > job.nns) threads = job.nns ? (int)job.nns : 1;
  {
    pthread_t tids[64];
    int started = 0;
    for (int t = 0; t < threads; t++)
      if (pthread_create(&tids[started], NULL, write_worker, &job) == 0) started++;
    if (started == 0) {
      /* Not one thread: nothing entered, every path reports it. */
      for (uint32_t i = 0; i < np; i++) {
        job.res[2 * i] = 3;
        job.res[2 * i + 1] = EAGAIN;
      }
    }
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
  }
  if (napi_create_typedarray(env, napi_int32_array, (size_t)np * 2, ab, 0, &ret) != napi_ok) ret = NULL;
out:
  free(first);
  free(dir);
  free_names(job.ns_paths, job.nns);
  free_names(job.paths, np);
  free_names(job.values, nv);
  return ret;
}

/* ---------- module ---------- */

/* dune_io.c: fd watches, nonblocking receive and raw sockets for the impairment engine. */
void dune_io_init(napi_env env, napi_value exports);

/*
 * removePaths(files: string[], dirs: string[]): Promise<Int32Array>
 *
 * unlink(2) of every file, then rmdir(2) of every dir in the order given, on a worker thread
 * of libuv's pool while JavaScript goes on (down removes a lab's thousand /etc/netns/<ns>
 * directories while it checks and deletes the namespaces). Resolves with an errno per file,
 * then per dir: 0 removed, ENOENT already gone, ENOTEMPTY a dir something else put a file in.
 */
struct remove_job {
  napi_async_work work;
  napi_deferred deferred;
  char **files;
  uint32_t nfiles;
  char **dirs;
  uint32_t ndirs;
  int32_t *res;
};

static void remove_execute(napi_env env, void *data) {
  (void)env;
  struct remove_job *j = data;
  for (uint32_t i = 0; i < j->nfiles; i++) j->res[i] = unlink(j->files[i]) < 0 ? errno : 0;
  for (uint32_t i = 0; i < j->ndirs; i++) j->res[j->nfiles + i] = rmdir(j->dirs[i]) < 0 ? errno : 0;
}

static void remove_complete(napi_env env, napi_status status, void *data) {
  struct remove_job *j = data;
  settle_int32(env, status, j->deferred, j->res, (size_t)j->nfiles + j->ndirs, "removePaths");
  napi_delete_async_work(env, j->work);
  free_names(j->files, j->nfiles);
  free_names(j->dirs, j->ndirs);
  free(j->res);
  free(j);
}

static napi_value RemovePaths(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, "EINVAL", "removePaths: expected (files, dirs)");
    return NULL;
  }
  struct remove_job *j = calloc(1, sizeof *j);
  if (!j) return throw_errno(env, ENOMEM, "malloc", "");
  if (read_names_any(env, argv[0], &j->files, &j->nfiles) < 0) {
    free(j);
    return NULL;
  }
  if (read_names_any(env, argv[1], &j->dirs, &j->ndirs) < 0) {
    free_names(j->files, j->nfiles);
    free(j);
    return NULL;
  }
  j->res = calloc((size_t)j->nfiles + j->ndirs + 1, sizeof(int32_t));
  napi_value promise = j->res ? start_job(env, "dune:removePaths", remove_execute, remove_complete, j, &j->work, &j->deferred) : NULL;
  if (!promise) {
    free_names(j->files, j->nfiles);
    free_names(j->dirs, j->ndirs);
    free(j->res);
    free(j);
    return throw_errno(env, ENOMEM, "removePaths", "");
  }
  return promise;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"nlOpen", NULL, NlOpen, NULL, NULL, NULL, napi_default, NULL},
      {"nlSend", NULL, NlSend, NULL, NULL, NULL, napi_default, NULL},
      {"nlSendAsync", NULL, NlSendAsync, NULL, NULL, NULL, napi_default, NULL},
      {"nlSendSeqAsync", NULL, NlSendSeqAsync, NULL, NULL, NULL, napi_default, NULL},
      {"nlSetSenders", NULL, NlSetSenders, NULL, NULL, NULL, napi_default, NULL},
      {"nlSendWait", NULL, NlSendWait, NULL, NULL, NULL, napi_default, NULL},
      {"nlRecv", NULL, NlRecv, NULL, NULL, NULL, napi_default, NULL},
      {"nlClose", NULL, NlClose, NULL, NULL, NULL, napi_default, NULL},
      {"peerPid", NULL, PeerPid, NULL, NULL, NULL, napi_default, NULL},
      {"openInNs", NULL, OpenInNs, NULL, NULL, NULL, napi_default, NULL},
      {"writeInNsMany", NULL, WriteInNsMany, NULL, NULL, NULL, napi_default, NULL},
      {"netnsCreateMany", NULL, NetnsCreateMany, NULL, NULL, NULL, napi_default, NULL},
      {"netnsCreateManyAsync", NULL, NetnsCreateManyAsync, NULL, NULL, NULL, napi_default, NULL},
      {"netnsDeleteMany", NULL, NetnsDeleteMany, NULL, NULL, NULL, napi_default, NULL},
      {"removePaths", NULL, RemovePaths, NULL, NULL, NULL, napi_default, NULL},
      {"loAliasesMany", NULL, LoAliasesMany, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  dune_io_init(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
