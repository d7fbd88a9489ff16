#pragma once
// The recorder of a Lua state (smtpsh --record, smtp.record): DNS answers come to it through
// the state's resolver, SMTP transcript lines through each session's observer.

#include "engine/record/recorder.hpp"

#include <lua.hpp>

namespace smtpsh::lua {

// The state's recorder while one is recording, else nullptr.  [-0, +0, -]
record::Recorder* recorder_of(lua_State* L);

}  // namespace smtpsh::lua
