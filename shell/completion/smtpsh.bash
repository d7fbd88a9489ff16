# bash completion for smtpsh                                    -*- shell-script -*-
# Installed as share/bash-completion/completions/smtpsh. The built-in subcommands are the
# names of scripts/*.lua, substituted by CMake (shell/CMakeLists.txt); the user's own
# (DIR/scripts/NAME.lua for each DIR of SMTPSH_PATH, and ~/.config/smtpsh) are listed when
# completing. A subcommand's options are the --words of `smtpsh NAME --help`, asked once per
# shell (at most 3 seconds). Needs nothing from the bash-completion package.

_smtpsh_builtin_commands="@SMTPSH_COMMANDS@"
declare -gA _smtpsh_option_cache 2>/dev/null || true

# The subcommands: built in, then the user's, one a line.
_smtpsh_commands() {
    local dir file
    local -a dirs=()
    if [[ -n ${SMTPSH_PATH-} ]]; then
        local IFS=:
        read -r -a dirs <<<"$SMTPSH_PATH"
        unset IFS
    fi
    if [[ -n ${XDG_CONFIG_HOME-} ]]; then
        dirs+=("$XDG_CONFIG_HOME/smtpsh")
    elif [[ -n ${HOME-} ]]; then
        dirs+=("$HOME/.config/smtpsh")
    fi
    printf '%s\n' $_smtpsh_builtin_commands
    for dir in "${dirs[@]}"; do
        [[ -n $dir && -d $dir/scripts ]] || continue
        for file in "$dir"/scripts/*.lua; do
            [[ -f $file ]] || continue
            file=${file##*/}
            printf '%s\n' "${file%.lua}"
        done
    done
}

# The options of subcommand $2 of smtpsh binary $1, from its --help.
_smtpsh_command_options() {
    local smtpsh=$1 command=$2 key="$1 $2" options
    if [[ -n ${_smtpsh_option_cache[$key]+set} ]]; then
        printf '%s\n' "${_smtpsh_option_cache[$key]}"
        return
    fi
    local -a run=("$smtpsh" "$command" --help)
    command -v timeout >/dev/null 2>&1 && run=(timeout 3 "${run[@]}")
    options=$("${run[@]}" </dev/null 2>&1 | grep -o -e '--[a-z][a-z0-9-]*' | sort -u)
    _smtpsh_option_cache[$key]=$options
    printf '%s\n' "$options"
}

_smtpsh() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=""
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    local smtpsh=${COMP_WORDS[0]:-smtpsh}
    [[ $smtpsh == "~/"* ]] && smtpsh=$HOME/${smtpsh#"~/"}
    COMPREPLY=()

    # The subcommand (or script): the first word that is neither an option nor an option's value.
    local i word command=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        case $word in
            -e | --record) ((i++)) ;;
            -*) ;;
            *) command=$word; break ;;
        esac
    done

    case $prev in
        --record | --input | --password-file | --body | --ca-file | --resume | --rejudge | \
            --cert | --key)
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        -e) return ;;
    esac

    if [[ -z $command ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-e -i --demo --trace --record --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$(_smtpsh_commands)" -- "$cur")
                       $(compgen -f -X '!*.lua' -- "$cur") $(compgen -d -- "$cur"))
        fi
        return
    fi
    if [[ $cur == -* && $command != *.lua && $command != */* ]] &&
        _smtpsh_commands | grep -qxF -- "$command"; then
        COMPREPLY=($(compgen -W "$(_smtpsh_command_options "$smtpsh" "$command")" -- "$cur"))
        return
    fi
    COMPREPLY=($(compgen -f -- "$cur"))
}

complete -o default -F _smtpsh smtpsh
