<?php

declare(strict_types=1);

namespace giudicelli\DistributedArchitecture\Slave;

/**
 * The original library's Slave\HandlerInterface, for scripts that type their
 * callback's argument with it.
 */
interface HandlerInterface extends \Distarch\Worker\HandlerInterface
{
}
