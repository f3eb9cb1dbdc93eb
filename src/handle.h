/* Descriptors that travel over the IPC channel: the sender's side of one,
 * and the NODE_HANDLE envelope around its message. */
#ifndef CP_HANDLE_H
#define CP_HANDLE_H

#include <stdbool.h>

#include <uv.h>

#include "bytes.h"
#include "childproc.h"

/*
 * A handle on its way out, from the send until the receiver's ACK or NACK.
 * The channel owns fd, except a caller's descriptor before
 * cp__outgoing_commit() (fd_is_callers), and give_up after the commit.
 */
typedef struct cp__outgoing {
  cp_handle_type type;
  int fd;             /* what travels: ours to close; -1 once closed */
  bool fd_is_callers; /* fd is the caller's own descriptor, handed over */
  bool retransmit;    /* NET_SOCKET without keep_open: resent after a NACK */
  bool udp6;          /* a DGRAM_SOCKET whose socket is AF_INET6 */
  uv_handle_t *give_up; /* the caller's uv handle, closed when done */
  uv_close_cb close_cb;
} cp__outgoing;

/*
 * Checks handle and prepares what travels: for a handed-over NET_SOCKET
 * given by fd, that descriptor itself; otherwise a close-on-exec
 * duplicate. Nothing of the caller's changes, so on failure the caller
 * still owns everything. Returns 0, CP_ERR_INVALID_HANDLE_TYPE,
 * CP_ERR_INVALID_ARG_VALUE (a uv handle of another loop), -EBADF, -EMFILE
 * or another negative errno of dup.
 */
int cp__outgoing_init(cp__outgoing *out, const cp_handle *handle,
                      const cp_send_options *options, uv_loop_t *loop);

/* The send was accepted: a handed-over socket is now the library's, and a
 * uv stream stops reading. (Node leaves its sender's socket reading and
 * drops what arrives, which loses data; stopping keeps it in the kernel
 * for the receiver.) */
void cp__outgoing_commit(cp__outgoing *out);

/* The send failed before commit: closes only what init made. */
void cp__outgoing_abandon(cp__outgoing *out);

/* The descriptor went out with its record: closes it unless a NACK may
 * need it again. */
void cp__outgoing_written(cp__outgoing *out);

/* The send is over (acknowledged, given up, or failed): closes everything
 * the library owns. Safe to call twice. */
void cp__outgoing_close(cp__outgoing *out);

/*
 * Writes the envelope around a message as Node's sender does:
 * {"cmd":"NODE_HANDLE","type":T,"msg":<message>} with "dgramType" after
 * msg for a dgram.Socket. begin writes up to the message, end the rest.
 */
int cp__envelope_begin(cp__bytes *bytes, const cp__outgoing *out);
int cp__envelope_end(cp__bytes *bytes, const cp__outgoing *out);

#endif
