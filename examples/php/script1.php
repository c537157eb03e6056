<?php
// script1.php from the README of giudicelli/distributed-architecture, ported to
// distarch: only the constructor line changed (the identity now comes from the
// DISTARCH_* variables, not from a JSON argument). examples/php/distarch.toml
// runs it with the SDK's autoloader prepended and one argument, which the
// original check below still requires.

use giudicelli\DistributedArchitecture\Slave\Handler;

if (empty($_SERVER['argv'][1])) {
    echo "Empty params\n";
    die(1);
}

$handler = new Handler();
$handler->run(function (Handler $handler, LoggerInterface $logger) {
    $groupConfig = $handler->getGroupConfig();

    $params = $groupConfig->getParams();

    // Anything echoed here will be considered log level "info" by the master process.
    // If you want another level for certain messages, use $logger.
    // echo "Hello world!\n" is the same as $logger->info('Hello world!')

    echo "My ID : ".$handler->getId()."\n";
    echo "My Group ID : ".$handler->getGroupId()."\n";
    echo "There are a total of ".$handler->getGroupCount()." processes in my group named \"".$groupConfig->getName()."\"\n";
    echo $params['message']."\n";

    while(!$handler->mustStop()) {
        // Do a very long task
        // ...

        // Let master know we're still running
        $handler->ping();
    }
});
