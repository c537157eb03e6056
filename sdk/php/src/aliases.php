<?php

// The original library's README types its callback's logger as `LoggerInterface`
// without importing it; in a script without a namespace that names the global
// class `\LoggerInterface`. Aliasing it to PSR-3's interface lets such scripts run
// unchanged. Nothing is aliased when the name is taken already.

declare(strict_types=1);

if (interface_exists(\Psr\Log\LoggerInterface::class) && !interface_exists('LoggerInterface', false)
    && !class_exists('LoggerInterface', false)) {
    class_alias(\Psr\Log\LoggerInterface::class, 'LoggerInterface');
}
