
# ---- corfs: image names for the job commands (appended to picocli's generated completion by scripts/install)
# 'corfs stream|commit|pause|resume|cancel|speed MOUNTPOINT <Tab>' offers the leaves mounted there, as the
# control file's status names them (percent-encoded where needed: the CLI accepts that form). Everything else
# is picocli's completion, generated from the same definitions as --help.
_corfs_mounted_images() {
    local control="$1/control"
    [ -r "$control" ] || return 0
    sed -n 's/^image=\([^ ]*\) .*/\1/p' "$control" 2>/dev/null
}

_complete_corfs_images() {
    local verb=${COMP_WORDS[1]:-} i mnt= nonopt=0
    case "$verb" in
        stream|commit|pause|resume|cancel|speed)
            # positional words before the current one, skipping options and their values
            for ((i = 2; i < COMP_CWORD; i++)); do
                case "${COMP_WORDS[i]}" in
                    --speed|--on-error) i=$((i + 1)) ;;
                    -*) ;;
                    *) nonopt=$((nonopt + 1)); [ "$nonopt" = 1 ] && mnt=${COMP_WORDS[i]} ;;
                esac
            done
            if [ "$nonopt" = 1 ] && [[ "${COMP_WORDS[COMP_CWORD]}" != -* ]]; then
                local IFS=$'\n'
                COMPREPLY=($(compgen -W "$(_corfs_mounted_images "$mnt")" -- "${COMP_WORDS[COMP_CWORD]}"))
                return 0
            fi
            ;;
    esac
    _complete_corfs "$@"
}

complete -F _complete_corfs_images -o default corfs
