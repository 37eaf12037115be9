#!/usr/bin/env bash
# A stand-in for Slurm, for running `medssl study slurm`'s scripts in tests. Installed
# under three names on PATH (the test copies it), it acts by the name it is called by:
#
#   sbatch [OPTIONS] SCRIPT   records a submission (the script is copied, as sbatch
#                             does), prints "Submitted batch job ID", or with
#                             --parsable "ID;fake" (as on a multi-cluster site)
#   squeue                    lists the tasks that have not ended
#   fake-slurm-run            runs the submitted tasks one at a time, each when its
#                             dependencies allow, until none can run; exits 1 when
#                             some never could (pending for ever)
#
# Options: --parsable, --array= (N, A-B, A-B:STEP, lists, %LIMIT ignored),
# --dependency= (afterok / afterany, each on ID or ID_TASK, joined by `:`; clauses
# joined by `,` must all hold), --kill-on-invalid-dep=yes|no, --job-name=, --output=
# (%x %A %a %j), and --time= --cpus-per-task= --mem= --partition= --gres= --account=
# --qos= --constraint= --mail-type= (accepted, no effect), from the command line or
# `#SBATCH` lines (the command line wins). Any other option is an error, so that
# scripts cannot rely on something not simulated.
#
# A task runs with SLURM_JOB_ID (its own id), SLURM_ARRAY_JOB_ID and
# SLURM_ARRAY_TASK_ID (array tasks), SLURM_JOB_NAME, in the submission's directory.
# afterok holds when the named tasks completed (exit 0), afterany when they ended
# (completed, failed or cancelled). A task whose afterok can never hold is cancelled
# with --kill-on-invalid-dep=yes and stays pending for ever without it, as in Slurm.
#
# State lives in $FAKE_SLURM_STATE: jobs/ID/{script,cwd,tasks,dependency,kill,name,
# output,status.TASK}, submissions.log (one line per sbatch) and events.log (one line
# per task that ran or was cancelled, in order).
set -euo pipefail

state=${FAKE_SLURM_STATE:?set FAKE_SLURM_STATE to the fake scheduler state directory}
mkdir -p "$state/jobs"

die() {
    echo "fake $(basename "$0"): $*" >&2
    exit 1
}

# Expands an --array spec into task indices, one per line.
expand_array() {
    local spec=${1%%\%*} part first last step
    local -a parts
    IFS=',' read -ra parts <<<"$spec"
    for part in "${parts[@]}"; do
        step=1
        if [[ $part == *:* ]]; then
            step=${part#*:}
            part=${part%%:*}
        fi
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            first=${BASH_REMATCH[1]}
            last=${BASH_REMATCH[2]}
        elif [[ $part =~ ^[0-9]+$ ]]; then
            first=$part
            last=$part
        else
            die "bad --array $1"
        fi
        seq "$first" "$step" "$last"
    done
}

sbatch_main() {
    local -a options=()
    local script="" arg
    for arg in "$@"; do
        if [[ -z $script && $arg == -* ]]; then
            options+=("$arg")
        elif [[ -z $script ]]; then
            script=$arg
        else
            die "arguments after the script are not supported: $arg"
        fi
    done
    [[ -n $script && -f $script ]] || die "no script file: ${script:-none}"
    # Directives first, then the command line, which overrides them.
    local -a directives=()
    local line
    while IFS= read -r line; do
        [[ $line == '#!'* || -z $line ]] && continue
        [[ $line == '#'* ]] || break
        if [[ $line =~ ^#SBATCH[[:space:]]+(.*)$ ]]; then
            directives+=("${BASH_REMATCH[1]}")
        fi
    done <"$script"
    local parsable=0 array="" dependency="" kill=no name
    local output=""
    name=$(basename "$script")
    for arg in "${directives[@]}" "${options[@]}"; do
        case $arg in
        --parsable) parsable=1 ;;
        --array=*) array=${arg#--array=} ;;
        --dependency=*) dependency=${arg#--dependency=} ;;
        --kill-on-invalid-dep=*) kill=${arg#--kill-on-invalid-dep=} ;;
        --job-name=*) name=${arg#--job-name=} ;;
        --output=*) output=${arg#--output=} ;;
        --time=* | --cpus-per-task=* | --mem=* | --partition=* | --gres=* | --account=* | \
            --qos=* | --constraint=* | --mail-type=*) ;;
        *) die "unsupported option $arg" ;;
        esac
    done
    [[ $kill == yes || $kill == no ]] || die "bad --kill-on-invalid-dep=$kill"
    local id=100
    [[ -f $state/next_id ]] && id=$(<"$state/next_id")
    echo $((id + 1)) >"$state/next_id"
    local dir=$state/jobs/$id
    mkdir -p "$dir"
    cp "$script" "$dir/script"
    pwd >"$dir/cwd"
    if [[ -n $array ]]; then
        expand_array "$array" >"$dir/tasks"
    else
        echo "-" >"$dir/tasks"
    fi
    echo "$dependency" >"$dir/dependency"
    echo "$kill" >"$dir/kill"
    echo "$name" >"$dir/name"
    echo "$output" >"$dir/output"
    echo "$id name=$name array=${array:--} dependency=${dependency:--} kill-on-invalid-dep=$kill" \
        >>"$state/submissions.log"
    if ((parsable)); then
        echo "$id;fake"
    else
        echo "Submitted batch job $id"
    fi
}

status_of() { # JOB TASK
    local file=$state/jobs/$1/status.$2
    if [[ -f $file ]]; then
        cat "$file"
    else
        echo PENDING
    fi
}

# The dependency of JOB as ok, wait or never.
dependency_of() {
    local spec clause kind targets target job task status verdict=ok
    spec=$(<"$state/jobs/$1/dependency")
    [[ -z $spec ]] && {
        echo ok
        return
    }
    [[ $spec == *'?'* ]] && die "dependencies joined by ? are not simulated: $spec"
    local -a clauses list tasks
    IFS=',' read -ra clauses <<<"$spec"
    for clause in "${clauses[@]}"; do
        kind=${clause%%:*}
        targets=${clause#*:}
        [[ $kind == afterok || $kind == afterany ]] || die "unsupported dependency $clause"
        IFS=':' read -ra list <<<"$targets"
        for target in "${list[@]}"; do
            if [[ $target =~ ^([0-9]+)_([0-9]+)$ ]]; then
                job=${BASH_REMATCH[1]}
                tasks=("${BASH_REMATCH[2]}")
                grep -qx "${tasks[0]}" "$state/jobs/$job/tasks" 2>/dev/null ||
                    die "dependency on $target: no such array task"
            elif [[ $target =~ ^[0-9]+$ ]]; then
                job=$target
                [[ -d $state/jobs/$job ]] || die "dependency on $target: no such job"
                mapfile -t tasks <"$state/jobs/$job/tasks"
            else
                die "bad dependency target $target in $spec"
            fi
            for task in "${tasks[@]}"; do
                status=$(status_of "$job" "$task")
                case $kind:$status in
                *:PENDING) [[ $verdict == ok ]] && verdict="wait" ;;
                afterok:COMPLETED | afterany:*) ;;
                afterok:*) verdict=never ;;
                esac
            done
        done
    done
    echo "$verdict"
}

log_path() { # JOB TASK OWN_ID
    local name pattern cwd
    name=$(<"$state/jobs/$1/name")
    pattern=$(<"$state/jobs/$1/output")
    cwd=$(<"$state/jobs/$1/cwd")
    if [[ -z $pattern ]]; then
        if [[ $2 == - ]]; then pattern=slurm-%j.out; else pattern=slurm-%A_%a.out; fi
    fi
    pattern=${pattern//%x/$name}
    pattern=${pattern//%A/$1}
    pattern=${pattern//%a/$2}
    pattern=${pattern//%j/$3}
    [[ $pattern == /* ]] || pattern=$cwd/$pattern
    echo "$pattern"
}

run_task() { # JOB TASK
    local job=$1 task=$2 own=$1 log status=COMPLETED name cwd
    if [[ $task != - ]]; then
        # Each array task has a job id of its own.
        own=$(<"$state/next_id")
        echo $((own + 1)) >"$state/next_id"
    fi
    log=$(log_path "$job" "$task" "$own")
    name=$(<"$state/jobs/$job/name")
    cwd=$(<"$state/jobs/$job/cwd")
    if [[ ! -d $(dirname "$log") ]]; then
        # Slurm cannot open the output file: the task fails at once.
        status=FAILED
    elif [[ $task == - ]]; then
        (cd "$cwd" && env -u SLURM_ARRAY_JOB_ID -u SLURM_ARRAY_TASK_ID \
            SLURM_JOB_ID="$own" SLURM_JOB_NAME="$name" \
            bash "$state/jobs/$job/script") </dev/null >"$log" 2>&1 || status=FAILED
    else
        (cd "$cwd" && env SLURM_JOB_ID="$own" SLURM_ARRAY_JOB_ID="$job" \
            SLURM_ARRAY_TASK_ID="$task" SLURM_JOB_NAME="$name" \
            bash "$state/jobs/$job/script") </dev/null >"$log" 2>&1 || status=FAILED
    fi
    echo "$status" >"$state/jobs/$job/status.$task"
    echo "run $(task_name "$job" "$task") $name $status" >>"$state/events.log"
}

task_name() {
    if [[ $2 == - ]]; then echo "$1"; else echo "$1_$2"; fi
}

all_tasks() { # prints "JOB TASK" lines in submission order
    local job task next=100
    [[ -f $state/next_id ]] && next=$(<"$state/next_id")
    for ((job = 100; job < next; job++)); do
        [[ -d $state/jobs/$job ]] || continue
        while IFS= read -r task; do
            echo "$job $task"
        done <"$state/jobs/$job/tasks"
    done
}

run_main() {
    local progress=1 job task verdict stuck=0
    touch "$state/events.log"
    while ((progress)); do
        progress=0
        while read -r job task; do
            [[ $(status_of "$job" "$task") == PENDING ]] || continue
            verdict=$(dependency_of "$job")
            case $verdict in
            ok)
                run_task "$job" "$task"
                progress=1
                ;;
            never)
                if [[ $(<"$state/jobs/$job/kill") == yes ]]; then
                    echo CANCELLED >"$state/jobs/$job/status.$task"
                    echo "cancel $(task_name "$job" "$task") $(<"$state/jobs/$job/name")" \
                        "DependencyNeverSatisfied" >>"$state/events.log"
                    progress=1
                fi
                ;;
            esac
        done < <(all_tasks)
    done
    while read -r job task; do
        if [[ $(status_of "$job" "$task") == PENDING ]]; then
            echo "pending for ever: $(task_name "$job" "$task") $(<"$state/jobs/$job/name")" >&2
            stuck=1
        fi
    done < <(all_tasks)
    return "$stuck"
}

squeue_main() {
    local job task
    echo "JOBID NAME STATE"
    while read -r job task; do
        if [[ $(status_of "$job" "$task") == PENDING ]]; then
            echo "$(task_name "$job" "$task") $(<"$state/jobs/$job/name") PENDING"
        fi
    done < <(all_tasks)
}

case $(basename "$0") in
sbatch) sbatch_main "$@" ;;
squeue) squeue_main "$@" ;;
fake-slurm-run) run_main "$@" ;;
*) die "call me as sbatch, squeue or fake-slurm-run" ;;
esac
