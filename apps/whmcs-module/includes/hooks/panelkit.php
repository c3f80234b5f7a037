<?php
/**
 * panelkit — optional WHMCS hooks: ask the provisioner to sync one client at once when something
 * happens in WHMCS, so products the provisioner serves without this module (the reverse sync, as
 * Ticketz does — seed 004) are as quick as module products. Each hook calls POST /v1/sync for the
 * client and never lets a failure reach the customer: hooks run inside WHMCS's own request.
 *
 * Hooks (developer docs, hooks-reference/): InvoicePaid (invoices-and-quotes.md: invoiceid),
 * AfterModuleCreate (module.md: params), UserLogin (authentication.md: user, WHMCS 8+) and ClientLogin
 * (userid; WHMCS 7 and earlier, no longer in the current docs — harmless where it never fires).
 *
 * The provisioner is the first enabled server entry of type "panelkit" (its hostname, access hash,
 * secure flag, port and TLS options, as the module uses them).
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

if (!function_exists('panelkit_hook_server_params')) {
    /** The module parameters of the panelkit server entry, or null when there is none. */
    function panelkit_hook_server_params()
    {
        if (!class_exists('\WHMCS\Database\Capsule')) {
            return null;
        }
        $server = \WHMCS\Database\Capsule::table('tblservers')
            ->where('type', 'panelkit')
            ->where('disabled', 0)
            ->orderBy('id')
            ->first();
        if (!$server) {
            return null;
        }
        $server = (array) $server;
        return array(
            'serverid' => $server['id'] ?? '',
            'serverhostname' => $server['hostname'] ?? '',
            'serverip' => $server['ipaddress'] ?? '',
            'serverusername' => $server['username'] ?? '',
            'serveraccesshash' => trim((string) ($server['accesshash'] ?? '')),
            'serversecure' => $server['secure'] ?? '',
            'serverport' => $server['port'] ?? '',
        );
    }

    /** POST /v1/sync for one client; failures are logged (module log) and swallowed. */
    function panelkit_hook_sync(array $who, $hook)
    {
        try {
            $root = defined('ROOTDIR') ? ROOTDIR : dirname(__DIR__, 2);
            require_once $root . '/modules/servers/panelkit/lib/client.php';
            $params = panelkit_hook_server_params();
            if ($params === null) {
                return;
            }
            panelkit_call($params, 'POST', '/v1/sync', $who, 'hook ' . $hook, 10);
        } catch (\Throwable $e) {
            // The hook's caller (a payment, a login) must go on; the failure is in the module log.
        }
    }

    /** A WHMCS client id, or null. */
    function panelkit_hook_client_id($value)
    {
        $id = is_scalar($value) ? (string) $value : '';
        return preg_match('/^[1-9][0-9]{0,11}$/', $id) ? $id : null;
    }
}

if (function_exists('add_hook')) {
    add_hook('InvoicePaid', 1, function ($vars) {
        $clientId = null;
        if (isset($vars['invoice']) && is_object($vars['invoice'])) {
            $clientId = panelkit_hook_client_id($vars['invoice']->userid ?? ($vars['invoice']->clientId ?? null));
        }
        if ($clientId === null && isset($vars['invoiceid']) && function_exists('localAPI')) {
            $invoice = localAPI('GetInvoice', array('invoiceid' => (int) $vars['invoiceid']));
            $clientId = panelkit_hook_client_id($invoice['userid'] ?? null);
        }
        if ($clientId !== null) {
            panelkit_hook_sync(array('clientId' => $clientId), 'InvoicePaid');
        }
    });

    add_hook('AfterModuleCreate', 1, function ($vars) {
        $params = isset($vars['params']) && is_array($vars['params']) ? $vars['params'] : array();
        // The panelkit module's own creates already went through the provisioner.
        if (($params['moduletype'] ?? '') === 'panelkit') {
            return;
        }
        $clientId = panelkit_hook_client_id($params['userid'] ?? null);
        if ($clientId !== null) {
            panelkit_hook_sync(array('clientId' => $clientId), 'AfterModuleCreate');
        }
    });

    add_hook('ClientLogin', 1, function ($vars) {
        $clientId = panelkit_hook_client_id($vars['userid'] ?? null);
        if ($clientId !== null) {
            panelkit_hook_sync(array('clientId' => $clientId), 'ClientLogin');
        }
    });

    add_hook('UserLogin', 1, function ($vars) {
        $user = $vars['user'] ?? null;
        $email = is_object($user) && isset($user->email) ? (string) $user->email : '';
        if ($email !== '' && filter_var($email, FILTER_VALIDATE_EMAIL)) {
            panelkit_hook_sync(array('email' => $email), 'UserLogin');
        }
    });
}
