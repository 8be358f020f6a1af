/* SPDX-License-Identifier: MIT */
/*
 * chat: a multi-user line chat, the classic of Twisted's tutorials, as a
 * twine protocol module built out of tree.
 *
 * Each client first sends the name it wants; from then on every line it
 * sends is relayed to every other user as "<name> line", and the others
 * hear when someone joins or leaves. "/quit" says goodbye. Lines end with
 * "\n" (a "\r" before it is dropped, so telnet works as well as nc).
 *
 * Build it against an installed twine, with nothing but pkg-config (the
 * Makefile beside this file is the two lines that do it), and serve it:
 *
 *     make
 *     reactord --protocol chat --plugin-path . --port 9000
 *     nc 127.0.0.1 9000          # in two terminals
 *
 * Options (reactord -o KEY=VALUE, listed by --help-protocol chat):
 *     greeting=TEXT       the first line a client sees
 *     max-line=INTEGER    the longest line accepted; a longer one disconnects
 *     max-backlog=INTEGER bytes a user may leave unread before being
 *                         disconnected, so one stalled client cannot make
 *                         the server's memory grow without bound
 *
 * The module is one TW_PLUGIN() descriptor, a factory that is the chat
 * room (it knows every user), and a protocol per connection that embeds a
 * line receiver.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>
#include <twine/line.h>

#define MAX_NAME 32

typedef struct chat_room chat_room;

typedef struct chat_user {
    tw_protocol base;
    tw_line_receiver lines;
    chat_room *room;
    struct chat_user *prev, *next; /* in the room once named */
    char name[MAX_NAME + 1];       /* "" until chosen */
} chat_user;

struct chat_room {
    tw_factory base;
    chat_user *users;
    size_t count;
    char *greeting;
    size_t max_line;
    size_t max_backlog;
};

static void say(chat_user *u, const char *text)
{
    tw_line_receiver_send_line(&u->lines, text, strlen(text));
}

/* Send @p text to every named user but @p from. */
static void broadcast(chat_room *room, chat_user *from, const char *text)
{
    for (chat_user *u = room->users; u != NULL; u = u->next) {
        if (u == from)
            continue;
        say(u, text);
        /* A user who stopped reading is dropped, not buffered for. */
        if (tw_transport_write_buffer_size(u->base.transport) > room->max_backlog)
            tw_transport_abort_connection(u->base.transport);
    }
}

static int valid_name(const char *name, size_t len)
{
    if (len == 0 || len > MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f || name[i] == '<' ||
            name[i] == '>')
            return 0;
    return 1;
}

static int name_taken(const chat_room *room, const char *name, size_t len)
{
    for (const chat_user *u = room->users; u != NULL; u = u->next)
        if (strlen(u->name) == len && memcmp(u->name, name, len) == 0)
            return 1;
    return 0;
}

static void join(chat_user *u, const char *name, size_t len)
{
    chat_room *room = u->room;
    char text[160 + MAX_NAME];
    if (!valid_name(name, len)) {
        say(u, "A name is 1 to 32 characters, without spaces, '<' or '>'. Your name?");
        return;
    }
    if (name_taken(room, name, len)) {
        snprintf(text, sizeof text, "%.*s is taken. Your name?", (int)len, name);
        say(u, text);
        return;
    }
    memcpy(u->name, name, len);
    u->name[len] = '\0';
    snprintf(text, sizeof text, "Welcome, %s! %zu other user%s here.", u->name, room->count,
             room->count == 1 ? " is" : "s are");
    say(u, text);
    snprintf(text, sizeof text, "* %s has joined", u->name);
    broadcast(room, u, text);
    u->next = room->users;
    if (room->users != NULL)
        room->users->prev = u;
    room->users = u;
    room->count++;
}

static void line_received(tw_line_receiver *lr, const char *line, size_t len)
{
    chat_user *u = tw_container_of(lr, chat_user, lines);
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (u->name[0] == '\0') {
        join(u, line, len);
        return;
    }
    if (len == 5 && memcmp(line, "/quit", 5) == 0) {
        say(u, "Bye!");
        tw_transport_lose_connection(u->base.transport);
        return;
    }
    if (len == 0)
        return;
    size_t n = len + strlen(u->name) + 4;
    char *text = malloc(n);
    if (text == NULL)
        return;
    snprintf(text, n, "<%s> %.*s", u->name, (int)len, line);
    broadcast(u->room, u, text);
    free(text);
}

static const tw_line_receiver_ops chat_line_ops = {
    .line_received = line_received,
};

static void connection_made(tw_protocol *p)
{
    chat_user *u = tw_container_of(p, chat_user, base);
    say(u, u->room->greeting);
}

static void data_received(tw_protocol *p, const void *data, size_t len)
{
    chat_user *u = tw_container_of(p, chat_user, base);
    tw_line_receiver_data_received(&u->lines, data, len);
}

static void connection_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)reason;
    chat_user *u = tw_container_of(p, chat_user, base);
    chat_room *room = u->room;
    if (u->name[0] == '\0')
        return;
    if (u->prev != NULL)
        u->prev->next = u->next;
    else
        room->users = u->next;
    if (u->next != NULL)
        u->next->prev = u->prev;
    room->count--;
    char text[32 + MAX_NAME];
    snprintf(text, sizeof text, "* %s has left", u->name);
    broadcast(room, NULL, text);
}

static void destroy(tw_protocol *p)
{
    chat_user *u = tw_container_of(p, chat_user, base);
    tw_line_receiver_cleanup(&u->lines);
    free(u);
}

static const tw_protocol_ops chat_protocol_ops = {
    .connection_made = connection_made,
    .data_received = data_received,
    .connection_lost = connection_lost,
    .destroy = destroy,
};

static tw_protocol *build_protocol(tw_factory *f, const tw_address *peer)
{
    (void)peer;
    chat_user *u = calloc(1, sizeof *u);
    if (u == NULL)
        return NULL;
    u->base.ops = &chat_protocol_ops;
    u->room = tw_container_of(f, chat_room, base);
    tw_line_receiver_init(&u->lines, &u->base, &chat_line_ops);
    tw_line_receiver_set_delimiter(&u->lines, "\n", 1);
    tw_line_receiver_set_max_length(&u->lines, u->room->max_line);
    return &u->base;
}

static void destroy_room(tw_factory *f)
{
    chat_room *room = tw_container_of(f, chat_room, base);
    free(room->greeting);
    free(room);
}

static const tw_factory_ops chat_factory_ops = {
    .build_protocol = build_protocol,
    .destroy = destroy_room,
};

static tw_factory *make_room(tw_reactor *r, const tw_options *opts, char *err, size_t errlen)
{
    (void)r;
    long long max_line = tw_options_get_int(opts, "max-line", 1024);
    long long max_backlog = tw_options_get_int(opts, "max-backlog", 1 << 20);
    if (max_line < 1 || max_backlog < 1) {
        snprintf(err, errlen, "max-line and max-backlog must be at least 1");
        return NULL;
    }
    chat_room *room = calloc(1, sizeof *room);
    const char *greeting = tw_options_get(opts, "greeting");
    if (room == NULL || (room->greeting = strdup(greeting)) == NULL) {
        free(room);
        snprintf(err, errlen, "out of memory creating the chat room");
        return NULL;
    }
    room->max_line = (size_t)max_line;
    room->max_backlog = (size_t)max_backlog;
    tw_factory_init(&room->base, &chat_factory_ops);
    return &room->base;
}

static const tw_option_spec chat_options[] = {
    {"greeting", TW_OPTION_STRING, "Welcome to twine chat. Your name?",
     "the first line a client sees"},
    {"max-line", TW_OPTION_INT, "1024", "the longest line accepted, in bytes"},
    {"max-backlog", TW_OPTION_INT, "1048576",
     "bytes a user may leave unread before being disconnected"},
    {NULL, 0, NULL, NULL},
};

TW_PLUGIN(chat, .type = TW_PLUGIN_PROTOCOL, .name = "chat",
          .description = "multi-user line chat: each line goes to every other user",
          .options = chat_options,
          .ctx = &(const tw_plugin_protocol){.make_factory = make_room});
