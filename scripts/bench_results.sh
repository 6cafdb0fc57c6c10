# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # sourced by scripts/bench.sh, which defines work and uses the globals
# scripts/bench_results.sh: how scripts/bench.sh keeps its figures.  Sourced by bench.sh.
#
#   R[CASE.KEY]     the values a case measured, one per round (space-separated); rec CASE KEY VALUE adds one
#   put KEY VALUE   a figure of the JSON object (a number, or null); put_raw KEY JSON
#   cmp KEY LABEL VALUES UNIT BASELINES [OP LIMIT]   KEY = median(VALUES) / median(BASELINES), and a row
#   info LABEL VALUE [TARGET VERDICT [NOTE]]        a row without a baseline; section TITLE: a heading
# VALUES and BASELINES may name a list of R as @CASE.KEY.

declare -A R=()
JSON_KEYS=()
declare -A JSON_VAL=()
TABLE=()
ANOMALIES=()

rec() { [[ -n ${3:-} ]] && R[$1.$2]+=" $3"; return 0; }
# val X: the list R[CASE.KEY] for X = @CASE.KEY, else X itself
val() { if [[ ${1:-} == @* ]]; then printf '%s' "${R[${1#@}]:-}"; else printf '%s' "${1:-}"; fi; }

is_num() { [[ ${1:-} =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; }
put() {
    local v=${2:-}
    is_num "$v" || v=null
    [[ -v JSON_VAL[$1] ]] || JSON_KEYS+=("$1")
    JSON_VAL[$1]=$v
}
put_raw() { [[ -v JSON_VAL[$1] ]] || JSON_KEYS+=("$1"); JSON_VAL[$1]=$2; }
# putm KEY VALUES: the median
putm() { put "$1" "$(median "$(val "$2")")"; }
anomaly() { ANOMALIES+=("$*"); warn "$*"; }

# median LIST: the median of the numbers in LIST (space-separated; anything else is ignored), or null
median() {
    local x nums=()
    for x in $1; do is_num "$x" && nums+=("$x"); done
    ((${#nums[@]})) || { echo null; return; }
    printf '%s\n' "${nums[@]}" | sort -g | awk '
        { a[NR] = $1 }
        END {
            if (NR % 2) { print a[(NR + 1) / 2]; exit }
            m = (a[NR / 2] + a[NR / 2 + 1]) / 2
            printf (m >= 100 ? "%.1f\n" : "%.3f\n"), m
        }'
}
# spread LIST: "n=3, spread 4%" ((max - min) / median), or "" for fewer than two numbers
spread() {
    local x nums=()
    for x in $1; do is_num "$x" && nums+=("$x"); done
    ((${#nums[@]} > 1)) || return 0
    printf '%s\n' "${nums[@]}" | sort -g | awk -v m="$(median "$1")" '{ a[NR] = $1 } END { if (m > 0) printf "n=%d, spread %.0f%%\n", NR, 100 * (a[NR] - a[1]) / m }'
}
# ratio A B: A/B with 3 decimals, or null
ratio() {
    if is_num "${1:-}" && is_num "${2:-}" && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a / b }'
    else
        echo null
    fi
}
# meets VALUE OP LIMIT: ok / MISS / n/a
meets() {
    is_num "${1:-}" || { echo "n/a"; return; }
    if awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { exit !((op == "<=" && v <= l) || (op == ">=" && v >= l) || (op == "==" && v == l)) }'; then
        echo ok
    else
        echo MISS
    fi
}
fmt() { if is_num "${1:-}"; then printf '%s%s' "$1" "${2:-}"; else printf -- '-'; fi; }
# sum A B: A + B with one decimal, or "" when either is not a number
sum() { is_num "${1:-}" && is_num "${2:-}" && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a + b }'; return 0; }

section() { TABLE+=("#$*"); }
cmp() {
    local key=$1 label=$2 values bases unit=$4 op=${6:-} limit=${7:-} v b r target='' verdict='' note
    values=$(val "$3")
    bases=$(val "$5")
    v=$(median "$values")
    b=$(median "$bases")
    r=$(ratio "$v" "$b")
    put "$key" "$r"
    if [[ -n $op ]]; then target="$op $limit"; verdict=$(meets "$r" "$op" "$limit"); fi
    note=$(spread "$values")
    [[ -n $note && -n $(spread "$bases") ]] && note+=" (baseline: $(spread "$bases" | sed 's/^n=[0-9]*, //'))"
    TABLE+=("$label|$(fmt "$v" "$unit")|$(fmt "$b" "$unit")|$r|$target|$verdict|$note")
}
info() { TABLE+=("$1|$2|||${3:-}|${4:-}|${5:-}"); }
# info_med LABEL VALUES UNIT [OP LIMIT]: the median of VALUES as a row, with its target
info_med() {
    local m
    m=$(median "$(val "$2")")
    info "$1" "$(fmt "$m" "$3")" "${4:+$4 $5$3}" "$([[ -n ${4:-} ]] && meets "$m" "$4" "$5")"
}

# print_results: the table, the anomalies, the JSON object (results.json, BENCH_OUT, the BENCH line);
# exits 2 when there were anomalies
print_results() {
    local misses=0 line label value base r target verdict note json sep k
    put anomalies "${#ANOMALIES[@]}"
    put load_avg_end "$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo null)"
    put runtime_s "$T_TOTAL"
    printf '\n  %-58s %15s %15s %7s %10s %-5s %s\n' "measurement" "value" "baseline" "ratio" "target" "" "rounds"
    for line in "${TABLE[@]}"; do
        if [[ $line == \#* ]]; then
            printf '\n%s\n' "${line#\#}"
            continue
        fi
        IFS='|' read -r label value base r target verdict note <<<"$line"
        [[ $verdict == MISS ]] && misses=$((misses + 1))
        printf '  %-58s %15s %15s %7s %10s %-5s %s\n' "$label" "$value" "$base" "${r:--}" "$target" "$verdict" "$note"
    done
    echo
    if ((${#ANOMALIES[@]})); then
        echo "anomalies:"
        printf '  - %s\n' "${ANOMALIES[@]}"
    fi
    echo "runtime: ${T_TOTAL}s; targets missed: $misses; anomalies: ${#ANOMALIES[@]}; load average before/after: $LOAD_START / ${JSON_VAL[load_avg_end]}"
    json="{"
    sep=""
    for k in "${JSON_KEYS[@]}"; do
        json+="$sep\"$k\": ${JSON_VAL[$k]}"
        sep=", "
    done
    json+="}"
    printf '%s\n' "$json" >"$work/results.json"
    if [[ -n $BENCH_OUT ]]; then printf '%s\n' "$json" >"$BENCH_OUT"; fi
    echo "results: $work/results.json (removed on exit unless EC_KEEP_TMP=1)${BENCH_OUT:+, copied to $BENCH_OUT}"
    echo "BENCH $json"
    # Missed targets are results; anomalies (failures, wrong rows, stalled or failed backfills) are errors.
    ((${#ANOMALIES[@]} == 0)) || exit 2
}
