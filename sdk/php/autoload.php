<?php

// An autoloader for running without composer (Debian's php-cli and php-psr-log are
// enough): `php -d auto_prepend_file=sdk/php/autoload.php script.php`, or
// `require 'sdk/php/autoload.php';`. Composer users get the same from composer.json.

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    $roots = [
        'Distarch\\Worker\\' => __DIR__ . '/src/',
        'giudicelli\\DistributedArchitecture\\' => __DIR__ . '/compat/',
    ];
    foreach ($roots as $prefix => $dir) {
        if (strncmp($class, $prefix, strlen($prefix)) === 0) {
            $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require $file;
            }
            return;
        }
    }
});

// psr/log: from a composer vendor/ next to the package, else Debian's php-psr-log.
if (!interface_exists(\Psr\Log\LoggerInterface::class)) {
    foreach ([__DIR__ . '/vendor/autoload.php', '/usr/share/php/Psr/Log/autoload.php'] as $candidate) {
        if (is_file($candidate)) {
            require_once $candidate;
            break;
        }
    }
}

require_once __DIR__ . '/src/aliases.php';
