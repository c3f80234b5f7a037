<?php
/**
 * panelkit — WHMCS server (provisioning) module.
 *
 * WHMCS calls these functions at each lifecycle moment (developer docs, provisioning-modules/
 * supported-functions.md); each one hands the call to the panelkit provisioner, which checks it against
 * WHMCS's own API, runs it as a durable, idempotent job with the connector of the product (Axigen,
 * Proxmox VE, ComputeStacks) and answers within the call's deadline. The module keeps no state.
 *
 * Contract kept here (seed 000 and the developer docs):
 * - every lifecycle function returns the string 'success' or a clean error message, never throws and
 *   never shows a stack trace;
 * - every call to the provisioner goes through logModuleCall with the server password, the access hash
 *   and the service password as replace-vars (module-logging.md);
 * - bad input is refused before anything is sent.
 *
 * The server entry (Setup > Products/Services > Servers, module "panelkit provisioner"):
 *   Hostname     the provisioner's host name, or its whole URL (https://provisioner.example.com:8443)
 *   Access Hash  one of the provisioner's API tokens (http.tokens)
 *   Secure/Port  https and the port, when the hostname is not a whole URL
 *   Username     TLS options: empty (verify), "ca=/path/to/ca.pem" (a private CA) or "insecure"
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

require_once __DIR__ . '/lib/client.php';

/** How many custom-action buttons a service can show (see panelkit_button_functions). */
const PANELKIT_ACTION_SLOTS = 24;

/** meta-data-params.md */
function panelkit_MetaData()
{
    return array(
        'DisplayName' => 'panelkit provisioner',
        'APIVersion' => '1.1',
        'RequiresServer' => true,
        'DefaultNonSSLPort' => '8080',
        'DefaultSSLPort' => '443',
        'ServiceSingleSignOnLabel' => 'Log in to the control panel',
    );
}

/**
 * config-options.md; the first option's list comes from the provisioner through a loader function
 * (loader-functions.md). Order matters: configoption1, configoption2.
 */
function panelkit_ConfigOptions()
{
    return array(
        'Connector product' => array(
            'Type' => 'text',
            'Size' => '32',
            'Default' => 'auto',
            'Loader' => 'panelkit_LoaderConnectorProducts',
            'SimpleMode' => true,
            'Description' => 'auto = as configured in the provisioner (products[].whmcsProductId); '
                . 'or the connector id the provisioner must map this product to',
        ),
        'Wait for completion' => array(
            'Type' => 'text',
            'Size' => '4',
            'Default' => '20',
            'SimpleMode' => true,
            'Description' => 'Seconds a call waits for the work; longer work (a VM deploy) is accepted '
                . 'and finishes in the background (0-55)',
        ),
    );
}

/** loader-functions.md: value => label; an exception shows its message to the admin. */
function panelkit_LoaderConnectorProducts(array $params)
{
    try {
        $info = panelkit_call($params, 'GET', '/v1/module/info', null, 'LoaderConnectorProducts', 15);
    } catch (PanelkitModuleError $e) {
        throw new \Exception($e->getMessage());
    }
    $list = array('auto' => 'As configured in the provisioner');
    foreach ((array) ($info['connectors'] ?? array()) as $c) {
        if (isset($c['id'])) {
            $list[(string) $c['id']] = (string) ($c['displayName'] ?? $c['id']) . ' (' . $c['id'] . ')';
        }
    }
    return $list;
}

/** A positive WHMCS id from $params, or a PanelkitModuleError naming the field. */
function panelkit_id(array $params, $key)
{
    $value = isset($params[$key]) ? (string) $params[$key] : '';
    if (!preg_match('/^[1-9][0-9]{0,11}$/', $value)) {
        throw new PanelkitModuleError(
            'The request is missing the service details; nothing was changed.',
            'Module parameter ' . $key . ' is missing or not a WHMCS id',
            'PANELKIT_ERR_VALIDATION'
        );
    }
    return $value;
}

/** Seconds a lifecycle call may wait (configoption2), bounded as the provisioner bounds it. */
function panelkit_wait_seconds(array $params)
{
    $raw = isset($params['configoption2']) ? trim((string) $params['configoption2']) : '';
    if ($raw === '') {
        return 20;
    }
    if (!preg_match('/^[0-9]{1,2}$/', $raw) || (int) $raw > 55) {
        throw new PanelkitModuleError(
            'The product is not configured correctly; nothing was changed.',
            'The product\'s "Wait for completion" must be a whole number of seconds from 0 to 55',
            'PANELKIT_ERR_CONFIG'
        );
    }
    return (int) $raw;
}

/** Name => value pairs of strings and numbers only, as WHMCS gives them (module-parameters.md). */
function panelkit_pairs($value)
{
    $out = array();
    if (!is_array($value)) {
        return $out;
    }
    foreach ($value as $name => $v) {
        if (is_scalar($v) && !is_bool($v)) {
            $out[(string) $name] = (string) $v;
        }
    }
    return $out;
}

/**
 * The explicit intent of a lifecycle call: the service id and the $params the provisioner checks
 * against WHMCS (client, product, configurable options, custom fields, client email). The service
 * password is not sent: the provisioner reads it from WHMCS's API.
 */
function panelkit_intent(array $params)
{
    $body = array(
        'clientId' => panelkit_id($params, 'userid'),
        'productId' => panelkit_id($params, 'pid'),
        'configOptions' => (object) panelkit_pairs($params['configoptions'] ?? array()),
        'customFields' => (object) panelkit_pairs($params['customfields'] ?? array()),
        'waitSeconds' => panelkit_wait_seconds($params),
    );
    $connector = isset($params['configoption1']) ? trim((string) $params['configoption1']) : '';
    $body['connector'] = $connector === '' ? 'auto' : $connector;
    if (isset($params['domain']) && is_string($params['domain']) && $params['domain'] !== '') {
        $body['domain'] = $params['domain'];
    }
    if (isset($params['username']) && is_string($params['username']) && $params['username'] !== '') {
        $body['username'] = $params['username'];
    }
    $email = $params['clientsdetails']['email'] ?? '';
    if (is_string($email) && $email !== '') {
        $body['clientEmail'] = $email;
    }
    return $body;
}

/** Runs one lifecycle call and turns the provisioner's answer into WHMCS's 'success' or an error. */
function panelkit_lifecycle(array $params, $action, $function)
{
    try {
        $serviceId = panelkit_id($params, 'serviceid');
        $body = panelkit_intent($params);
        $answer = panelkit_call(
            $params,
            'POST',
            '/v1/module/services/' . $serviceId . '/' . $action,
            $body,
            $function,
            $body['waitSeconds'] + 20
        );
        $outcome = isset($answer['outcome']) ? $answer['outcome'] : '';
        if ($outcome === 'done' || $outcome === 'accepted') {
            // 'accepted': long work (a VM deploy) is durable in the provisioner's queue and finishes in
            // the background, as seed 000 advises; its progress shows in the admin tab.
            return 'success';
        }
        $message = isset($answer['message']) && is_string($answer['message']) && $answer['message'] !== ''
            ? $answer['message']
            : 'The provisioning service could not finish this.';
        if ($outcome === 'retrying') {
            return $message . ' The provisioner keeps retrying; see the service\'s panelkit fields.';
        }
        return $message;
    } catch (PanelkitModuleError $e) {
        return $e->getMessage();
    } catch (\Throwable $e) {
        panelkit_log_unexpected($params, $function, $e);
        return 'The provisioning service failed unexpectedly; see the module log.';
    }
}

/** A failure inside the module itself: the class and message to the log, never a trace to a user. */
function panelkit_log_unexpected(array $params, $function, \Throwable $e)
{
    if (function_exists('logModuleCall')) {
        logModuleCall(
            'panelkit',
            $function,
            array('serviceid' => $params['serviceid'] ?? null),
            get_class($e) . ': ' . $e->getMessage(),
            null,
            panelkit_secret_values($params)
        );
    }
}

function panelkit_CreateAccount(array $params)
{
    return panelkit_lifecycle($params, 'create', 'CreateAccount');
}

function panelkit_SuspendAccount(array $params)
{
    return panelkit_lifecycle($params, 'suspend', 'SuspendAccount');
}

function panelkit_UnsuspendAccount(array $params)
{
    return panelkit_lifecycle($params, 'unsuspend', 'UnsuspendAccount');
}

function panelkit_TerminateAccount(array $params)
{
    return panelkit_lifecycle($params, 'terminate', 'TerminateAccount');
}

function panelkit_ChangePassword(array $params)
{
    return panelkit_lifecycle($params, 'changePassword', 'ChangePassword');
}

function panelkit_ChangePackage(array $params)
{
    return panelkit_lifecycle($params, 'changePackage', 'ChangePackage');
}

/** Returns array('success' => bool, 'error' => string), the shape of WHMCS's sample module. */
function panelkit_TestConnection(array $params)
{
    try {
        $info = panelkit_call($params, 'GET', '/v1/module/info', null, 'TestConnection', 15);
        if (empty($info['ok'])) {
            return array('success' => false, 'error' => 'The provisioner did not report itself ready.');
        }
        if (empty($info['whmcs'])) {
            return array(
                'success' => false,
                'error' => 'The provisioner answered, but has no WHMCS connection configured (its whmcs section).',
            );
        }
        return array('success' => true, 'error' => '');
    } catch (PanelkitModuleError $e) {
        return array('success' => false, 'error' => $e->getMessage());
    } catch (\Throwable $e) {
        panelkit_log_unexpected($params, 'TestConnection', $e);
        return array('success' => false, 'error' => 'The connection test failed unexpectedly; see the module log.');
    }
}

/**
 * single-sign-on.md: array('success' => bool, 'redirectTo' => url) or ('success' => false,
 * 'errorMsg' => text). WHMCS calls it from the client area and from the admin's service page; in the
 * admin area (ADMINAREA defined) the connector's admin sign-on is asked for.
 */
function panelkit_ServiceSingleSignOn(array $params)
{
    try {
        $serviceId = panelkit_id($params, 'serviceid');
        $audience = defined('ADMINAREA') ? 'admin' : 'client';
        $answer = panelkit_call(
            $params,
            'POST',
            '/v1/module/services/' . $serviceId . '/sso',
            array('clientId' => panelkit_id($params, 'userid'), 'audience' => $audience),
            'ServiceSingleSignOn',
            20
        );
        $url = isset($answer['url']) ? (string) $answer['url'] : '';
        if (!preg_match('#^https?://#i', $url)) {
            return array('success' => false, 'errorMsg' => 'The control panel did not give a sign-on address.');
        }
        return array('success' => true, 'redirectTo' => $url);
    } catch (PanelkitModuleError $e) {
        return array('success' => false, 'errorMsg' => $e->getMessage());
    } catch (\Throwable $e) {
        panelkit_log_unexpected($params, 'ServiceSingleSignOn', $e);
        return array('success' => false, 'errorMsg' => 'Single sign-on failed unexpectedly.');
    }
}

/**
 * client-area-output.md: array('templatefile' => name, 'vars' => array) — the template is looked up
 * in this module's folder (templates/overview.tpl).
 */
function panelkit_ClientArea(array $params)
{
    try {
        $serviceId = panelkit_id($params, 'serviceid');
        $clientId = panelkit_id($params, 'userid');
        $data = panelkit_call(
            $params,
            'GET',
            '/v1/module/services/' . $serviceId . '/client-area?clientId=' . $clientId,
            null,
            'ClientArea',
            20
        );
        $fields = array();
        foreach ((array) ($data['fields'] ?? array()) as $f) {
            if (!is_array($f) || !isset($f['label'])) {
                continue;
            }
            $value = $f['value'] ?? '';
            $fields[] = array(
                'label' => (string) $f['label'],
                'value' => is_bool($value) ? ($value ? 'yes' : 'no') : (string) $value,
                'unit' => isset($f['unit']) ? (string) $f['unit'] : '',
                'limit' => isset($f['limit']) ? (string) $f['limit'] : '',
            );
        }
        $links = array();
        foreach ((array) ($data['links'] ?? array()) as $l) {
            if (is_array($l) && isset($l['url'], $l['label']) && preg_match('#^https?://#i', (string) $l['url'])) {
                $links[] = array('label' => (string) $l['label'], 'url' => (string) $l['url']);
            }
        }
        return array(
            'templatefile' => 'templates/overview',
            'vars' => array(
                'panelkit_state' => (string) ($data['state'] ?? 'none'),
                'panelkit_working' => !empty($data['working']),
                'panelkit_ips' => array_values(array_map('strval', (array) ($data['ips'] ?? array()))),
                'panelkit_username' => (string) ($data['username'] ?? ''),
                'panelkit_last_step' => (string) ($data['lastStep'] ?? ''),
                'panelkit_fields' => $fields,
                'panelkit_links' => $links,
            ),
        );
    } catch (PanelkitModuleError $e) {
        return array('templatefile' => 'templates/error', 'vars' => array('panelkit_error' => $e->getMessage()));
    } catch (\Throwable $e) {
        panelkit_log_unexpected($params, 'ClientArea', $e);
        return array(
            'templatefile' => 'templates/error',
            'vars' => array('panelkit_error' => 'The service details are not available right now.'),
        );
    }
}

/**
 * admin-services-tab.md: label => HTML shown on the admin's service page (information only, escaped):
 * the provisioning state, the last job and the pipeline's step.
 */
function panelkit_AdminServicesTabFields(array $params)
{
    $h = function ($v) {
        return htmlspecialchars((string) $v, ENT_QUOTES, 'UTF-8');
    };
    try {
        $serviceId = panelkit_id($params, 'serviceid');
        $clientId = panelkit_id($params, 'userid');
        $data = panelkit_call(
            $params,
            'GET',
            '/v1/module/services/' . $serviceId . '?clientId=' . $clientId,
            null,
            'AdminServicesTabFields',
            15
        );
        if (empty($data['provisioned'])) {
            return array('panelkit state' => 'Not provisioned by panelkit yet');
        }
        $s = (array) ($data['service'] ?? array());
        $fields = array(
            'panelkit state' => $h(($s['actual'] ?? '?') . ' (wanted: ' . ($s['desired'] ?? '?') . ')'
                . (!empty($s['serverId']) ? ' on ' . $s['serverId'] : '')),
        );
        if (!empty($s['ips'])) {
            $fields['panelkit addresses'] = $h(implode(', ', (array) $s['ips']));
        }
        $job = $data['lastJob'] ?? null;
        if (is_array($job)) {
            $text = '#' . ($job['id'] ?? '?') . ' ' . ($job['operation'] ?? '?') . ': ' . ($job['status'] ?? '?')
                . ' (from ' . ($job['source'] ?? '?') . ', attempt ' . ($job['attempts'] ?? 0) . ')';
            if (isset($job['error']['detail'])) {
                $text .= ' — ' . $job['error']['detail'];
            }
            $fields['panelkit last job'] = $h($text);
        }
        $step = $s['lastStep'] ?? '';
        $pipeline = $data['pipeline'] ?? null;
        if (is_array($pipeline)) {
            $step = ($pipeline['name'] ?? '') . ': ' . ($pipeline['state'] ?? '')
                . (!empty($pipeline['nextStep']) ? ', next ' . $pipeline['nextStep'] : '')
                . (!empty($pipeline['completed']) ? ' (completed)' : '');
        }
        if ($step !== '') {
            $fields['panelkit pipeline step'] = $h($step);
        }
        $fields['panelkit jobs'] = $h(($data['openJobs'] ?? 0) . ' open, ' . ($data['parkedJobs'] ?? 0) . ' parked');
        return $fields;
    } catch (PanelkitModuleError $e) {
        return array('panelkit state' => $h('Unavailable: ' . $e->getMessage()));
    } catch (\Throwable $e) {
        panelkit_log_unexpected($params, 'AdminServicesTabFields', $e);
        return array();
    }
}

/**
 * The connector's custom actions for this service, each given a numbered slot: WHMCS calls a custom
 * button's function by name (custom-functions.md), so the module defines panelkit_action1 …
 * panelkit_action24 and maps each to the action at that place in the provisioner's list (sorted by
 * name, the same for admins and clients). Only actions a plain button can run (no input) are offered.
 * WHMCS hands these array functions the service's $params on the service pages; without a service
 * (as the sample module's tests call them, with an empty array) there are no buttons.
 */
function panelkit_button_functions(array $params, $audience)
{
    if (!isset($params['serviceid'], $params['userid'])) {
        return array();
    }
    try {
        $serviceId = panelkit_id($params, 'serviceid');
        $clientId = panelkit_id($params, 'userid');
        $data = panelkit_call(
            $params,
            'GET',
            '/v1/module/services/' . $serviceId . '/actions?clientId=' . $clientId,
            null,
            $audience === 'admin' ? 'AdminCustomButtonArray' : 'ClientAreaCustomButtonArray',
            15
        );
    } catch (\Throwable $e) {
        return array();
    }
    $buttons = array();
    foreach (array_values((array) ($data['actions'] ?? array())) as $i => $a) {
        if ($i >= PANELKIT_ACTION_SLOTS) {
            break;
        }
        if (!is_array($a) || empty($a['runsWithoutInput']) || !in_array($audience, (array) ($a['audience'] ?? array()), true)) {
            continue;
        }
        $buttons[(string) $a['label']] = 'action' . ($i + 1);
    }
    return $buttons;
}

/** custom-functions.md: label => function name without the module prefix. */
function panelkit_AdminCustomButtonArray(array $params = array())
{
    return panelkit_button_functions($params, 'admin');
}

function panelkit_ClientAreaCustomButtonArray(array $params = array())
{
    return panelkit_button_functions($params, 'client');
}

/** Runs the action in slot $slot for this service; 'success' or an error message. */
function panelkit_run_action(array $params, $slot)
{
    $function = 'action' . $slot;
    try {
        $serviceId = panelkit_id($params, 'serviceid');
        $clientId = panelkit_id($params, 'userid');
        $audience = defined('ADMINAREA') ? 'admin' : 'client';
        $list = panelkit_call(
            $params,
            'GET',
            '/v1/module/services/' . $serviceId . '/actions?clientId=' . $clientId,
            null,
            $function,
            15
        );
        $actions = array_values((array) ($list['actions'] ?? array()));
        $action = $actions[$slot - 1] ?? null;
        if (!is_array($action) || !isset($action['name'])) {
            return 'This action is not available for this service.';
        }
        $answer = panelkit_call(
            $params,
            'POST',
            '/v1/module/services/' . $serviceId . '/actions/' . rawurlencode((string) $action['name']),
            array('clientId' => $clientId, 'audience' => $audience, 'params' => new \stdClass()),
            $function . ' ' . $action['name'],
            50
        );
        if ($audience === 'client' && isset($answer['data'])) {
            // An action that answers with data (snapshots, backups, a console link) gets a page of its
            // own in the client area (client-area-output.md, "Custom Pages"); admins' buttons can only
            // say success, so theirs goes to the module log.
            $url = isset($answer['data']['url']) && is_string($answer['data']['url'])
                && preg_match('#^https?://#i', $answer['data']['url']) ? $answer['data']['url'] : '';
            return array(
                'templatefile' => 'templates/action',
                'breadcrumb' => array(
                    'clientarea.php?action=productdetails&id=' . $serviceId . '&modop=custom&a=' . $function
                        => (string) ($action['label'] ?? $action['name']),
                ),
                'vars' => array(
                    'panelkit_action' => (string) ($action['label'] ?? $action['name']),
                    'panelkit_message' => (string) ($answer['message'] ?? ''),
                    'panelkit_url' => $url,
                    'panelkit_data' => json_encode($answer['data'], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES),
                ),
            );
        }
        return 'success';
    } catch (PanelkitModuleError $e) {
        return $e->getMessage();
    } catch (\Throwable $e) {
        panelkit_log_unexpected($params, $function, $e);
        return 'The action failed unexpectedly; see the module log.';
    }
}

function panelkit_action1(array $params)
{
    return panelkit_run_action($params, 1);
}

function panelkit_action2(array $params)
{
    return panelkit_run_action($params, 2);
}

function panelkit_action3(array $params)
{
    return panelkit_run_action($params, 3);
}

function panelkit_action4(array $params)
{
    return panelkit_run_action($params, 4);
}

function panelkit_action5(array $params)
{
    return panelkit_run_action($params, 5);
}

function panelkit_action6(array $params)
{
    return panelkit_run_action($params, 6);
}

function panelkit_action7(array $params)
{
    return panelkit_run_action($params, 7);
}

function panelkit_action8(array $params)
{
    return panelkit_run_action($params, 8);
}

function panelkit_action9(array $params)
{
    return panelkit_run_action($params, 9);
}

function panelkit_action10(array $params)
{
    return panelkit_run_action($params, 10);
}

function panelkit_action11(array $params)
{
    return panelkit_run_action($params, 11);
}

function panelkit_action12(array $params)
{
    return panelkit_run_action($params, 12);
}

function panelkit_action13(array $params)
{
    return panelkit_run_action($params, 13);
}

function panelkit_action14(array $params)
{
    return panelkit_run_action($params, 14);
}

function panelkit_action15(array $params)
{
    return panelkit_run_action($params, 15);
}

function panelkit_action16(array $params)
{
    return panelkit_run_action($params, 16);
}

function panelkit_action17(array $params)
{
    return panelkit_run_action($params, 17);
}

function panelkit_action18(array $params)
{
    return panelkit_run_action($params, 18);
}

function panelkit_action19(array $params)
{
    return panelkit_run_action($params, 19);
}

function panelkit_action20(array $params)
{
    return panelkit_run_action($params, 20);
}

function panelkit_action21(array $params)
{
    return panelkit_run_action($params, 21);
}

function panelkit_action22(array $params)
{
    return panelkit_run_action($params, 22);
}

function panelkit_action23(array $params)
{
    return panelkit_run_action($params, 23);
}

function panelkit_action24(array $params)
{
    return panelkit_run_action($params, 24);
}

/**
 * usage-update.md: runs daily per server from WHMCS's cron; reads disk and bandwidth (MB) of every
 * service the provisioner serves and writes them to tblhosting with Capsule, one update per service,
 * only for services assigned to this server entry.
 */
function panelkit_UsageUpdate(array $params)
{
    try {
        $serverId = panelkit_id($params, 'serverid');
        $data = panelkit_call($params, 'GET', '/v1/module/usage', null, 'UsageUpdate', 120);
        foreach ((array) ($data['services'] ?? array()) as $u) {
            if (!is_array($u) || !isset($u['serviceId']) || !preg_match('/^[0-9]+$/', (string) $u['serviceId'])) {
                continue;
            }
            $row = array('lastupdate' => date('Y-m-d H:i:s'));
            foreach (array('diskusage' => 'diskUsageMb', 'disklimit' => 'diskLimitMb', 'bwusage' => 'bandwidthUsageMb', 'bwlimit' => 'bandwidthLimitMb') as $column => $key) {
                if (isset($u[$key]) && is_numeric($u[$key])) {
                    $row[$column] = (int) round((float) $u[$key]);
                }
            }
            \WHMCS\Database\Capsule::table('tblhosting')
                ->where('id', (int) $u['serviceId'])
                ->where('server', (int) $serverId)
                ->update($row);
        }
        return 'success';
    } catch (PanelkitModuleError $e) {
        return $e->getMessage();
    } catch (\Throwable $e) {
        panelkit_log_unexpected($params, 'UsageUpdate', $e);
        return 'The usage update failed unexpectedly; see the module log.';
    }
}
