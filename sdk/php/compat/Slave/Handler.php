<?php

declare(strict_types=1);

namespace giudicelli\DistributedArchitecture\Slave;

/**
 * The original library's Slave\Handler, on distarch: scripts written for
 * giudicelli/distributed-architecture keep their `use` lines and change only the
 * constructor (`new Handler($_SERVER['argv'][1])` becomes `new Handler()`): the
 * identity now comes from the DISTARCH_* environment variables.
 */
class Handler extends \Distarch\Worker\Handler implements HandlerInterface
{
}
