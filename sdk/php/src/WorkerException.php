<?php

declare(strict_types=1);

namespace Distarch\Worker;

/**
 * The script was not started by distarch, or a DISTARCH_* variable is unusable.
 * The message names the variable ("not started by distarch: DISTARCH_ID is not set").
 */
final class WorkerException extends \InvalidArgumentException
{
}
