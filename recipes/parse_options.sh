# The command-line options of a recipe, sourced after its defaults (as icefall's and Kaldi's
# parse_options.sh are):
#   --some-name VALUE   sets the recipe's variable some_name, which it must have given a default
#   --some-flag         sets a variable that holds false (or true) to true
#   -h, --help          prints the recipe's leading comment (up to its `set` line) and exits
# Every other argument is kept, in order, in the array `passthrough`: the recipe hands it on to
# the recipe it runs, or refuses it.
passthrough=()
while [ $# -gt 0 ]; do
    option=${1#--}
    option=${option//-/_}
    if [ "$1" = -h ] || [ "$1" = --help ]; then
        sed -n '2,/^set /{/^#/p}' "$0"
        exit 0
    elif [[ $1 == --* && $option =~ ^[a-z][a-z0-9_]*$ && $(declare -p "$option" 2>/dev/null) =~ ^declare\ -[-x]\  ]]; then
        if [ "${!option}" = false ] || [ "${!option}" = true ]; then
            printf -v "$option" true
            shift
        elif [ $# -ge 2 ]; then
            printf -v "$option" '%s' "$2"
            shift 2
        else
            echo "$(basename "$0"): $1 needs a value (see --help)" >&2
            exit 2
        fi
    else
        passthrough+=("$1")
        shift
    fi
done
unset option
