/*
 * fork-node: a C parent that forks a Node.js script and talks to it over
 * the IPC channel, as a Node.js parent would with child_process.fork().
 *
 * Usage: fork-node [SCRIPT]
 *
 * SCRIPT is the path of examples/node/worker.js. Without it, the program
 * tries node/worker.js and ../../examples/node/worker.js relative to its
 * own directory. The second finds the script from a build directory inside
 * the source tree, such as build/.
 *
 * What happens, in order:
 *   1. cp_fork() runs `node SCRIPT`, as fork() with execPath "node".
 *   2. The script sends {"cmd":"NODE_EXAMPLE_READY",...}. A cmd that starts
 *      with NODE_ makes it an internal message: it arrives as
 *      INTERNAL_MESSAGE, and MESSAGE listeners never see it. Then the
 *      script sends a plain hello, which arrives as MESSAGE.
 *   3. The parent sends three values (text with non-ASCII characters, a
 *      nested object, an array of numbers). The script replies to each with
 *      what JavaScript finds in it and an echo of it, and the parent checks
 *      that the echo equals what it sent.
 *   4. The parent sends one last message and calls cp_child_disconnect()
 *      at once. The queued message is still written before the channel
 *      closes. The script prints one line on its 'disconnect' event and
 *      exits, and the parent receives DISCONNECT, EXIT and CLOSE.
 *
 * The script's stdout is this program's stdout, so its line appears among
 * ours. When `node` is not on PATH, the program says so and exits with 0.
 * Otherwise it exits with 1 if anything differs from what is described
 * above.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <childproc.h>
#include <uv.h>

enum { VALUE_COUNT = 3 };

typedef struct session {
  cJSON *sent[VALUE_COUNT]; /* the values sent, to compare with the echoes */
  int replies;
  int mismatches;
  int send_errors;
  int close_count;
  bool node_missing;
  bool failed;
  char events[256]; /* the child's events, in the order they came */
} session;

static void log_event(session *s, const char *name) {
  size_t used = strlen(s->events);

  snprintf(s->events + used, sizeof(s->events) - used, "%s%s",
           used > 0 ? ", " : "", name);
}

/* Prints a value as JSON text. cJSON_PrintUnformatted() writes some
 * numbers other than JSON.stringify() and the channel do (2^53 - 1 as
 * 9.00719925474099e+15), but none of the numbers used here. */
static void print_json(const char *prefix, const cJSON *value) {
  char *text = cJSON_PrintUnformatted(value);

  printf("%s%s\n", prefix, text != NULL ? text : "(out of memory)");
  free(text);
}

/* Code points in UTF-8 text: every byte that does not continue a
 * multi-byte sequence starts one. */
static size_t count_code_points(const char *text) {
  size_t count = 0;

  for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
    if ((*p & 0xC0) != 0x80)
      count++;
  }
  return count;
}

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------ */

/* Called once per send: 0 once the message is written to the socket, or
 * the error that kept it from being written. */
static void on_sent(cp_child *child, int status, void *data) {
  session *s = data;

  (void)child;
  if (status < 0) {
    printf("  a send failed: %s\n", cp_strerror(status));
    s->send_errors++;
  }
}

static void send_value(cp_child *child, session *s, int seq, cJSON *value) {
  cJSON *message = cJSON_CreateObject();
  int r;

  cJSON_AddNumberToObject(message, "seq", seq);
  cJSON_AddItemReferenceToObject(message, "value", value);
  print_json("C -> node    ", message);

  /* The message is serialized at once, so it can be freed right away. */
  r = cp_child_send(child, message, NULL, NULL, on_sent, s);
  if (r < 0) {
    printf("  cp_child_send failed: %s\n", cp_strerror(r));
    s->failed = true;
  }
  cJSON_Delete(message);
}

static void send_values(cp_child *child, session *s) {
  /* "Grüße aus C: 你好, мир 👋" in UTF-8, spelled out in bytes so that the
   * source file's encoding does not matter. */
  static const char greeting[] = "Gr\xc3\xbc\xc3\x9f"
                                 "e aus C: \xe4\xbd\xa0\xe5\xa5\xbd, "
                                 "\xd0\xbc\xd0\xb8\xd1\x80 \xf0\x9f\x91\x8b";

  s->sent[0] = cJSON_CreateString(greeting);
  s->sent[1] = cJSON_Parse(
      "{\"order\":{\"id\":7,\"lines\":[{\"sku\":\"A-1\",\"qty\":2},"
      "{\"sku\":\"B-2\",\"qty\":1,\"tags\":[\"gift\",\"fragile\"]}],"
      "\"ship\":{\"city\":\"Z\xc3\xbcrich\",\"express\":true,"
      "\"note\":null}}}");
  s->sent[2] = cJSON_Parse("[0,-1.5,0.1,1000000,1e21]");

  printf("\nThe parent sends three values:\n");
  for (int i = 0; i < VALUE_COUNT; i++)
    send_value(child, s, i + 1, s->sent[i]);
  printf("\n");
}

static void on_goodbye_sent(cp_child *child, int status, void *data) {
  (void)child;
  if (status == 0) {
    printf("             send callback of {\"bye\":true}: status 0, it was "
           "written\n");
    return;
  }
  on_sent(child, status, data);
}

/* The last message, then the disconnect. Node's disconnect() drops what
 * is still queued in the process, but cp_child_disconnect() writes it
 * first. */
static void say_goodbye(cp_child *child, session *s) {
  static const char bye[] = "{\"bye\":true}";
  int r;

  printf("\nC -> node    %s, then cp_child_disconnect() at once\n", bye);
  r = cp_child_send_json(child, bye, strlen(bye), on_goodbye_sent, s);
  if (r < 0) {
    printf("  cp_child_send_json failed: %s\n", cp_strerror(r));
    s->failed = true;
  }
  r = cp_child_disconnect(child);
  if (r < 0) {
    printf("  cp_child_disconnect failed: %s\n", cp_strerror(r));
    s->failed = true;
  }
  printf("             cp_child_connected() right after: %s\n",
         cp_child_connected(child) ? "true" : "false");
}

/* ------------------------------------------------------------------------
 * Receiving
 * ------------------------------------------------------------------------ */

static void on_internal_message(cp_child *child, const cp_event *event,
                                void *data) {
  (void)child;
  log_event(data, "INTERNAL_MESSAGE");
  print_json("node -> C    INTERNAL_MESSAGE ", event->message);
  printf("             (its cmd starts with NODE_, so MESSAGE listeners "
         "do not get it)\n");
}

/* Compares the string's lengths as JavaScript counted them with C's. */
static void check_string(const cJSON *seen, const char *text) {
  const cJSON *units = cJSON_GetObjectItemCaseSensitive(seen, "utf16Units");
  const cJSON *points = cJSON_GetObjectItemCaseSensitive(seen, "codePoints");
  const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(seen, "utf8Bytes");

  if (!cJSON_IsNumber(units) || !cJSON_IsNumber(points) ||
      !cJSON_IsNumber(bytes))
    return;
  printf("             node counts %d UTF-16 units, %d code points, %d "
         "UTF-8 bytes;\n"
         "             C counts %zu code points and %zu UTF-8 bytes\n",
         units->valueint, points->valueint, bytes->valueint,
         count_code_points(text), strlen(text));
}

static void on_reply(session *s, const cJSON *message) {
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(message, "seq");
  const cJSON *seen = cJSON_GetObjectItemCaseSensitive(message, "seen");
  const cJSON *echo = cJSON_GetObjectItemCaseSensitive(message, "echo");
  const cJSON *sent;

  if (!cJSON_IsNumber(seq) || seq->valueint < 1 ||
      seq->valueint > VALUE_COUNT) {
    print_json("node -> C    MESSAGE (unexpected) ", message);
    s->failed = true;
    return;
  }

  sent = s->sent[seq->valueint - 1];
  printf("node -> C    reply #%d\n", seq->valueint);
  print_json("             seen: ", seen);
  if (cJSON_IsString(sent))
    check_string(seen, sent->valuestring);
  /* NOTE: cJSON_Compare() takes two numbers within a relative
   * DBL_EPSILON of each other as equal. */
  if (echo != NULL && cJSON_Compare(sent, echo, true)) {
    printf("             the echo equals the value sent\n");
  } else {
    print_json("             the echo DIFFERS: ", echo);
    s->mismatches++;
  }
  s->replies++;
}

static void on_message(cp_child *child, const cp_event *event, void *data) {
  session *s = data;

  log_event(s, "MESSAGE");
  if (cJSON_GetObjectItemCaseSensitive(event->message, "hello") != NULL) {
    print_json("node -> C    MESSAGE ", event->message);
    send_values(child, s);
    return;
  }

  on_reply(s, event->message);
  if (s->replies == VALUE_COUNT)
    say_goodbye(child, s);
}

/* ------------------------------------------------------------------------
 * The child's life
 * ------------------------------------------------------------------------ */

static void on_spawn(cp_child *child, const cp_event *event, void *data) {
  (void)event;
  log_event(data, "SPAWN");
  printf("SPAWN        node runs as pid %ld\n", (long)cp_child_pid(child));
}

static void on_error(cp_child *child, const cp_event *event, void *data) {
  session *s = data;

  (void)child;
  log_event(s, "ERROR");
  if (event->error == -ENOENT && event->syscall != NULL &&
      strcmp(event->syscall, "spawn node") == 0) {
    printf("node is not on PATH, so there is no Node.js child to talk to.\n");
    s->node_missing = true;
    return;
  }
  printf("ERROR        %s: %s\n",
         event->syscall != NULL ? event->syscall : "IPC",
         cp_strerror(event->error));
  s->failed = true;
}

static void on_disconnect(cp_child *child, const cp_event *event, void *data) {
  session *s = data;

  (void)event;
  log_event(s, "DISCONNECT");
  if (!s->node_missing)
    printf("DISCONNECT   the channel is closed; cp_child_connected(): %s\n",
           cp_child_connected(child) ? "true" : "false");
}

static void on_exit_event(cp_child *child, const cp_event *event, void *data) {
  session *s = data;

  (void)child;
  log_event(s, "EXIT");
  if (event->signal != 0) {
    printf("EXIT         node was killed by %s\n",
           cp_signal_name(event->signal));
    s->failed = true;
  } else {
    printf("EXIT         node exited with code %d\n", event->exit_code);
    if (event->exit_code != 0)
      s->failed = true;
  }
}

static void on_close(cp_child *child, const cp_event *event, void *data) {
  session *s = data;

  (void)event;
  log_event(s, "CLOSE");
  s->close_count++;
  if (!s->node_missing)
    printf("CLOSE        once, after the parent's own disconnect (Node's "
           "fork() never emits\n"
           "             'close' in that case)\n");
  cp_child_release(child);
}

static void watch(cp_child *child, session *s) {
  cp_child_on(child, CP_EVENT_SPAWN, on_spawn, s);
  cp_child_on(child, CP_EVENT_INTERNAL_MESSAGE, on_internal_message, s);
  cp_child_on(child, CP_EVENT_MESSAGE, on_message, s);
  cp_child_on(child, CP_EVENT_ERROR, on_error, s);
  cp_child_on(child, CP_EVENT_DISCONNECT, on_disconnect, s);
  cp_child_on(child, CP_EVENT_EXIT, on_exit_event, s);
  cp_child_on(child, CP_EVENT_CLOSE, on_close, s);
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

/* Looks for the script next to this executable. Returns false when it is
 * not there. */
static bool find_script(char *path, size_t size) {
  static const char *const candidates[] = {
      "/node/worker.js",
      "/../../examples/node/worker.js",
  };
  char dir[4096];
  size_t len = sizeof(dir);
  char *slash;

  if (uv_exepath(dir, &len) != 0 || (slash = strrchr(dir, '/')) == NULL)
    return false;
  *slash = '\0';

  for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
    int n = snprintf(path, size, "%s%s", dir, candidates[i]);

    if (n > 0 && (size_t)n < size && access(path, R_OK) == 0)
      return true;
  }
  return false;
}

/* Whether the run went as the comment at the top of this file describes. */
static bool went_as_expected(const session *s) {
  return !s->failed && s->replies == VALUE_COUNT && s->mismatches == 0 &&
         s->send_errors == 0 && s->close_count == 1;
}

int main(int argc, char **argv) {
  static session s;
  cp_fork_options options = {.exec_path = "node"};
  char script[4096];
  uv_loop_t *loop = uv_default_loop();
  cp_child *child;
  int r;

  /* Node writes its line straight to the shared terminal or pipe. With
   * line buffering, ours go out at once too, and the lines stay in order. */
  setvbuf(stdout, NULL, _IOLBF, 0);

  if (argc > 2) {
    fprintf(stderr, "usage: %s [SCRIPT]\n", argv[0]);
    return 2;
  }
  if (argc == 2) {
    snprintf(script, sizeof(script), "%s", argv[1]);
  } else if (!find_script(script, sizeof(script))) {
    fprintf(stderr, "fork-node: examples/node/worker.js not found next to this "
                    "program; pass its path as the first argument\n");
    return 2;
  }

  r = cp_fork(loop, script, NULL, &options, &child);
  if (r < 0) {
    fprintf(stderr, "fork-node: cp_fork failed: %s\n", cp_strerror(r));
    return 1;
  }
  printf("cp_fork()    node %s\n", script);
  watch(child, &s);

  uv_run(loop, UV_RUN_DEFAULT);

  if (!s.node_missing)
    printf("\nThe child's events, in order: %s\n", s.events);
  for (int i = 0; i < VALUE_COUNT; i++)
    cJSON_Delete(s.sent[i]);
  if (uv_loop_close(loop) != 0)
    return 1;
  if (s.node_missing)
    return 0;
  return went_as_expected(&s) ? 0 : 1;
}
