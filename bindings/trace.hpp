#pragma once
// The live trace (--trace, smtp.connect{trace = true}, dns.trace(true)): the bindings emit
// events, and a Lua function of the state, its trace sink, shows them (stdlib/trace.lua
// installs one that renders the lines for a terminal). An event is a plain table:
// {source = "smtp", t =, dir = "C"|"S"|"!", line =} or {source = "dns", dir = "==", line =, ...}.
// Without a sink (the bindings loaded into a stock lua5.4), a plain line goes to stderr.
//
// The sink runs on a thread of its own, in protected mode: an engine callback may emit an
// event with C++ objects alive around it, and a sink that raises or yields must not unwind
// through them. Its error is reported on stderr in place of the event.

#include <lua.hpp>

#include <cstddef>

namespace smtpsh::lua {

// Pushes the event table.  [-0, +1, m]
using PushTraceEvent = void (*)(lua_State* L, const void* event);
// Writes the event to stderr as one plain line (no colour, control bytes as \xNN).
using PrintTraceEvent = void (*)(const void* event);

// The thread of L's state on which the sink is called, created on first use. A binding gets it
// while it may raise, and keeps it for the events it emits later.  [-0, +0, m]
lua_State* trace_thread(lua_State* L);

// Hands the event to the sink of `thread`'s state (a thread from trace_thread), or prints it.
// Never raises nor yields: safe from engine callbacks.
void emit_trace(lua_State* thread, PushTraceEvent push, PrintTraceEvent print,
                const void* event) noexcept;

// smtpcore.trace_sink([fn | false]) and dnscore.trace_sink: with a function, makes it the state's
// sink (false removes it); returns the sink in use before (nil when none).
int trace_sink(lua_State* L);

// Writes `length` bytes of `text` to stderr with control bytes shown as \xNN: a hostile peer's
// NUL, bare CR or escape sequence must neither cut a line short on a terminal nor drive it.
void write_visible(const char* text, std::size_t length);

}  // namespace smtpsh::lua
