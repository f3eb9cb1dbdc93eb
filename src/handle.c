/* Descriptors that travel over the IPC channel: the sender's side of one,
 * and the NODE_HANDLE envelope around its message. */
#include "handle.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

#include "io.h"

/* Indexed by cp_handle_type; the names are Node's (lib/internal/
 * child_process.js, handleConversion). */
static const char *const type_names[] = {
    [CP_HANDLE_NET_SERVER] = "net.Server",
    [CP_HANDLE_NET_SOCKET] = "net.Socket",
    [CP_HANDLE_NET_NATIVE] = "net.Native",
    [CP_HANDLE_DGRAM_SOCKET] = "dgram.Socket",
    [CP_HANDLE_DGRAM_NATIVE] = "dgram.Native",
};

#define TYPE_COUNT (sizeof(type_names) / sizeof(type_names[0]))

const char *cp_handle_type_name(cp_handle_type type) {
  if ((unsigned)type >= TYPE_COUNT)
    return NULL;
  return type_names[type];
}

cp_handle_type cp_handle_type_from_name(const char *name) {
  if (name == NULL)
    return CP_HANDLE_NONE;

  for (unsigned i = 1; i < TYPE_COUNT; i++) {
    if (strcmp(type_names[i], name) == 0)
      return (cp_handle_type)i;
  }
  return CP_HANDLE_NONE;
}

static bool is_dgram(cp_handle_type type) {
  return type == CP_HANDLE_DGRAM_SOCKET || type == CP_HANDLE_DGRAM_NATIVE;
}

/* Node sends TCP and pipe handles as net types and UDP ones as dgram
 * types; anything else is ERR_INVALID_HANDLE_TYPE there too. */
static int uv_descriptor(const cp_handle *handle, uv_loop_t *loop, int *fd) {
  uv_handle_type kind = handle->uv->type;
  uv_os_fd_t os_fd;
  int r;

  if (handle->uv->loop != loop)
    return CP_ERR_INVALID_ARG_VALUE;
  if (is_dgram(handle->type) ? kind != UV_UDP
                             : kind != UV_TCP && kind != UV_NAMED_PIPE)
    return CP_ERR_INVALID_HANDLE_TYPE;

  r = uv_fileno(handle->uv, &os_fd);
  if (r < 0)
    return r;
  *fd = os_fd;
  return 0;
}

/* Node's dgramType: "udp6" for an AF_INET6 socket, else "udp4". */
static bool is_udp6(int fd) {
  struct sockaddr_storage address;
  socklen_t len = sizeof(address);

  if (getsockname(fd, (struct sockaddr *)&address, &len) < 0)
    return false;
  return address.ss_family == AF_INET6;
}

int cp__outgoing_init(cp__outgoing *out, const cp_handle *handle,
                      const cp_send_options *options, uv_loop_t *loop) {
  bool keep_open = options != NULL && options->keep_open;
  int fd = handle->fd;
  int r;

  *out = (cp__outgoing){.type = handle->type, .fd = -1};
  if (cp_handle_type_name(handle->type) == NULL)
    return CP_ERR_INVALID_HANDLE_TYPE;

  if (handle->uv != NULL) {
    r = uv_descriptor(handle, loop, &fd);
    if (r < 0)
      return r;
  }
  if (fd < 0 || fcntl(fd, F_GETFD) < 0)
    return -EBADF;

  out->retransmit = handle->type == CP_HANDLE_NET_SOCKET && !keep_open;
  out->udp6 = handle->type == CP_HANDLE_DGRAM_SOCKET && is_udp6(fd);

  /* A handed-over socket given by descriptor travels as it is. A uv one
   * travels as a duplicate, since uv_close() will close the original. */
  if (out->retransmit && handle->uv == NULL) {
    out->fd = fd;
    out->fd_is_callers = true;
    return 0;
  }

  /* NOTE: each send still waiting for its turn keeps a duplicate open, so
   * a large burst of queued handle sends can reach RLIMIT_NOFILE (EMFILE). */
  out->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (out->fd < 0)
    return -errno;
  if (out->retransmit) {
    out->give_up = handle->uv;
    out->close_cb = handle->close_cb;
  }
  return 0;
}

void cp__outgoing_commit(cp__outgoing *out) {
  out->fd_is_callers = false;
  if (out->give_up != NULL && out->give_up->type != UV_UDP)
    uv_read_stop((uv_stream_t *)out->give_up);
}

void cp__outgoing_abandon(cp__outgoing *out) {
  if (!out->fd_is_callers)
    cp__close(out->fd);
  out->fd = -1;
  out->give_up = NULL;
}

void cp__outgoing_written(cp__outgoing *out) {
  if (!out->retransmit)
    out->fd = cp__close(out->fd);
}

void cp__outgoing_close(cp__outgoing *out) {
  out->fd = cp__close(out->fd);
  if (out->give_up != NULL && !uv_is_closing(out->give_up))
    uv_close(out->give_up, out->close_cb);
  out->give_up = NULL;
}

int cp__envelope_begin(cp__bytes *bytes, const cp__outgoing *out) {
  static const char head[] = "{\"cmd\":\"NODE_HANDLE\",\"type\":\"";
  static const char tail[] = "\",\"msg\":";
  const char *name = cp_handle_type_name(out->type);
  size_t len_before = bytes->len;
  int r;

  r = cp__bytes_append(bytes, head, sizeof(head) - 1);
  if (r == 0)
    r = cp__bytes_append(bytes, name, strlen(name));
  if (r == 0)
    r = cp__bytes_append(bytes, tail, sizeof(tail) - 1);
  if (r < 0)
    bytes->len = len_before;
  return r;
}

int cp__envelope_end(cp__bytes *bytes, const cp__outgoing *out) {
  static const char udp4[] = ",\"dgramType\":\"udp4\"}";
  static const char udp6[] = ",\"dgramType\":\"udp6\"}";

  if (out->type != CP_HANDLE_DGRAM_SOCKET)
    return cp__bytes_append(bytes, "}", 1);
  if (out->udp6)
    return cp__bytes_append(bytes, udp6, sizeof(udp6) - 1);
  return cp__bytes_append(bytes, udp4, sizeof(udp4) - 1);
}
